#include "broker/timers/deadline_scheduler.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

namespace refbroker::timers {

DeadlineScheduler::DeadlineScheduler(boost::asio::io_context& io, const Clock& clock, FireFn fire,
                                     NextFn next, std::chrono::milliseconds max_idle)
    : io_(io),
      clock_(clock),
      fire_(std::move(fire)),
      next_(std::move(next)),
      max_idle_(max_idle),
      timer_(io) {}

void DeadlineScheduler::Start() {
  boost::asio::post(io_, [this] { Run(); });
}

void DeadlineScheduler::Poke(Micros due) {
  boost::asio::post(io_, [this, due] {
    if (armed_for_ == 0 || due < armed_for_) Arm(due);
  });
}

void DeadlineScheduler::Run() {
  fire_();
  auto next = next_();
  Micros idle_until =
      clock_.Now() + std::chrono::duration_cast<std::chrono::microseconds>(max_idle_).count();
  if (!next.ok()) {
    spdlog::warn("deadlines: cannot read the next one: {}", next.status().ToString());
    Arm(idle_until);
    return;
  }
  Arm(next->has_value() ? std::min(**next, idle_until) : idle_until);
}

void DeadlineScheduler::Arm(Micros at) {
  armed_for_ = at;
  Micros delay = std::max<Micros>(at - clock_.Now(), 0);
  timer_.expires_after(std::chrono::microseconds(delay));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Run();
  });
}

}  // namespace refbroker::timers

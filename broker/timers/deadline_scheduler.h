#pragma once
// DeadlineScheduler: fires stored deadlines with one Boost.Asio timer.
//
// The deadlines live in the store (so a restart neither loses nor repeats one); this class only
// decides when to look. `fire` does the due work (e.g. ReferralWorkflow::EscalateDue) and
// `next` returns the earliest deadline still pending. The timer is armed for that moment, at
// least every `max_idle` as a safety net, and at once on Start() (deadlines that passed while
// the broker was down). Poke() re-arms it when an earlier deadline is stored.
//
// Thread-safe: Poke may be called from any thread; the timer work runs on the io_context.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <optional>

#include "absl/status/statusor.h"
#include "broker/common/clock.h"

namespace refbroker::timers {

class DeadlineScheduler {
 public:
  using FireFn = std::function<void()>;
  using NextFn = std::function<absl::StatusOr<std::optional<Micros>>()>;

  DeadlineScheduler(boost::asio::io_context& io, const Clock& clock, FireFn fire, NextFn next,
                    std::chrono::milliseconds max_idle = std::chrono::seconds(30));
  DeadlineScheduler(const DeadlineScheduler&) = delete;
  DeadlineScheduler& operator=(const DeadlineScheduler&) = delete;

  void Start();
  void Poke(Micros due);

 private:
  void Run();           // on io
  void Arm(Micros at);  // on io

  boost::asio::io_context& io_;
  const Clock& clock_;
  FireFn fire_;
  NextFn next_;
  const std::chrono::milliseconds max_idle_;
  boost::asio::steady_timer timer_;
  Micros armed_for_ = 0;  // on io only
};

}  // namespace refbroker::timers

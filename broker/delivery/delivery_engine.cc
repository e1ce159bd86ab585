#include "broker/delivery/delivery_engine.h"

#include <boost/asio/post.hpp>

namespace refbroker::delivery {

DeliveryEngine::DeliveryEngine(storage::Store& store, const Clock& clock,
                               const EngineOptions& options)
    : store_(store),
      clock_(clock),
      options_(options),
      pool_(options.workers),
      delivery_pool_(options.delivery_workers) {}

DeliveryEngine::~DeliveryEngine() { Shutdown(); }

std::shared_ptr<Subscription> DeliveryEngine::Subscribe(const QueueName& queue,
                                                        const std::string& group, uint32_t window,
                                                        uint64_t replay_from,
                                                        std::shared_ptr<DeliverySink> sink,
                                                        Reader reader) {
  auto sub = std::make_shared<Subscription>(*this, queue, group, window, std::move(sink),
                                            std::move(reader));
  {
    std::lock_guard<std::mutex> lock(mu_);
    by_queue_[queue.ToString()].insert(sub);
  }
  sub->Start(replay_from);
  return sub;
}

void DeliveryEngine::Notify(const std::string& queue) {
  counters_.enqueued++;
  Wake(queue);
}

void DeliveryEngine::Wake(const std::string& queue) {
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue.empty()) {
      for (auto& [name, set] : by_queue_) subs.insert(subs.end(), set.begin(), set.end());
    } else {
      auto it = by_queue_.find(queue);
      if (it == by_queue_.end()) return;
      subs.assign(it->second.begin(), it->second.end());
    }
  }
  for (auto& s : subs) s->Wake();
}

uint32_t DeliveryEngine::Consumers(const std::string& queue, const std::string& group) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_queue_.find(queue);
  if (it == by_queue_.end()) return 0;
  uint32_t n = 0;
  for (const auto& s : it->second) n += s->group() == group ? 1 : 0;
  return n;
}

size_t DeliveryEngine::SubscriptionCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [q, subs] : by_queue_) n += subs.size();
  return n;
}

void DeliveryEngine::Unregister(Subscription* sub) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_queue_.find(sub->queue_text());
  if (it == by_queue_.end()) return;
  for (auto s = it->second.begin(); s != it->second.end(); ++s) {
    if (s->get() == sub) {
      it->second.erase(s);
      break;
    }
  }
  if (it->second.empty()) by_queue_.erase(it);
}

void DeliveryEngine::RunBlocking(std::function<void()> fn) {
  boost::asio::post(pool_, std::move(fn));
}

void DeliveryEngine::FailAll(const absl::Status& status) {
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [q, set] : by_queue_) subs.insert(subs.end(), set.begin(), set.end());
  }
  for (auto& s : subs) s->Fail(status);
}

void DeliveryEngine::Shutdown() {
  pool_.stop();
  delivery_pool_.stop();
  pool_.join();
  delivery_pool_.join();
}

}  // namespace refbroker::delivery

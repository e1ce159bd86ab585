#pragma once
// DeliveryEngine: runs every Subscription of this broker process and wakes them when their
// queue changes. It owns the worker pool on which all blocking store calls of the API run.
//
// Thread-safe.

#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "broker/common/clock.h"
#include "broker/delivery/subscription.h"
#include "broker/storage/store.h"

namespace refbroker::delivery {

struct EngineOptions {
  int ack_deadline_ms = 30000;
  uint32_t max_attempts = 5;
  int nack_retry_delay_ms = 1000;
  int workers = 32;          // the pool for the API's blocking calls
  int delivery_workers = 4;  // the subscriptions' own pool
};

// Counters the engine keeps for metrics.
struct EngineCounters {
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> redelivered{0};
  std::atomic<uint64_t> acked{0};
  std::atomic<uint64_t> nacked{0};
  std::atomic<uint64_t> enqueued{0};           // messages announced to their queue
  std::atomic<uint64_t> deadline_breaches{0};  // referral and consult escalations
};

class DeliveryEngine {
 public:
  // Called on the subscription's strand after an ack is durable.
  using AckHook = std::function<void(const QueueName&, const storage::AckResult&)>;

  DeliveryEngine(storage::Store& store, const Clock& clock, const EngineOptions& options);
  ~DeliveryEngine();  // joins the worker pool
  DeliveryEngine(const DeliveryEngine&) = delete;
  DeliveryEngine& operator=(const DeliveryEngine&) = delete;

  // What the first ack of a message of a queue writes in the ack's own transaction (an empty
  // function: nothing): Store::AckBatch's follow-up.
  using AckFollowUpSource = std::function<storage::AckFollowUp(const QueueName&)>;

  void SetAckHook(AckHook hook) { ack_hook_ = std::move(hook); }
  void SetAckFollowUp(AckFollowUpSource follow_up_for) {
    ack_follow_up_for_ = std::move(follow_up_for);
  }

  // Opens a subscription and starts it. The caller has authorized the principal.
  std::shared_ptr<Subscription> Subscribe(const QueueName& queue, const std::string& group,
                                          uint32_t window, uint64_t replay_from,
                                          std::shared_ptr<DeliverySink> sink, Reader reader = {});
  // Wakes every subscription of `queue` (a message was enqueued or requeued).
  void Notify(const std::string& queue);
  // Wakes them without counting an enqueue: another broker on the same database enqueued
  // (Store::SetEnqueueListener); "" wakes every subscription.
  void Wake(const std::string& queue);
  // Streams connected for (queue, group).
  uint32_t Consumers(const std::string& queue, const std::string& group) const;
  size_t SubscriptionCount() const;

  // Ends every subscription with `status` (shutdown).
  void FailAll(const absl::Status& status);
  // Runs `fn` on the worker pool (for blocking work of the API layer).
  void RunBlocking(std::function<void()> fn);
  // Stops taking work and waits for queued work to finish.
  void Shutdown();

  storage::Store& store() { return store_; }
  const Clock& clock() const { return clock_; }
  const EngineOptions& options() const { return options_; }
  EngineCounters& counters() { return counters_; }
  boost::asio::thread_pool& pool() { return pool_; }
  // Where the subscriptions' strands run: their store calls (acks, leases) never queue behind
  // the API's calls waiting in pool() (a pipelined submit stream queues hundreds there).
  boost::asio::thread_pool& delivery_pool() { return delivery_pool_; }

 private:
  friend class Subscription;
  void Unregister(Subscription* sub);
  void RunAckHook(const QueueName& q, const storage::AckResult& r) {
    if (ack_hook_) ack_hook_(q, r);
  }
  storage::AckFollowUp AckFollowUpFor(const QueueName& q) const {
    return ack_follow_up_for_ ? ack_follow_up_for_(q) : storage::AckFollowUp();
  }

  storage::Store& store_;
  const Clock& clock_;
  const EngineOptions options_;
  AckHook ack_hook_;
  AckFollowUpSource ack_follow_up_for_;
  EngineCounters counters_;
  boost::asio::thread_pool pool_;
  boost::asio::thread_pool delivery_pool_;
  mutable std::mutex mu_;
  std::map<std::string, std::set<std::shared_ptr<Subscription>>> by_queue_;  // guarded by mu_
};

}  // namespace refbroker::delivery

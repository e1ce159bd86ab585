#pragma once
// Subscription: the broker side of one Subscribe stream: one member of a consumer group
// reading one queue.
//
// Threading: every method may be called from any thread; the work runs serialized on the
// subscription's strand of the engine's worker pool (blocking store calls are allowed there),
// so different subscriptions run in parallel and share group commits.
//
// Invariant: inflight_.size() ≤ window_: the broker never holds more unacknowledged messages on
// a stream than the subscriber's window. A lease that expired no longer counts: its message is
// deliverable again (to this stream or another member of the group).

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "broker/common/queue_name.h"
#include "broker/delivery/delivery_sink.h"
#include "broker/storage/store.h"

namespace refbroker::delivery {

class DeliveryEngine;

// Who receives a subscription's messages: each message leased to it is recorded in the audit
// trail as a DELIVER by this principal (no audit entries when `id` is empty).
struct Reader {
  std::string id;
  std::string alliance;
  std::string peer;
  // Asked before every lease (none: always allowed): an error ends the subscription with it, so
  // a reader whose certificate was revoked after it subscribed is sent nothing more.
  std::function<absl::Status()> still_allowed;
};

class Subscription : public std::enable_shared_from_this<Subscription> {
 public:
  using Strand = boost::asio::strand<boost::asio::thread_pool::executor_type>;

  Subscription(DeliveryEngine& engine, QueueName queue, std::string group, uint32_t window,
               std::shared_ptr<DeliverySink> sink, Reader reader = {});
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Creates the group if needed, applies a replay, then starts delivering.
  void Start(uint64_t replay_from);
  // Something may be deliverable (a new message, a requeue): lease and send what fits.
  void Wake();
  void Ack(uint64_t sequence);
  void Nack(uint64_t sequence, std::string reason);
  // The stream ended: unacked leases go back to the group at once.
  void Close();
  // Ends the stream with `status` (and releases, as Close).
  void Fail(const absl::Status& status);

  const QueueName& queue() const { return queue_; }
  const std::string& group() const { return group_; }
  std::string queue_text() const { return queue_text_; }

 private:
  void Pump();  // on strand
  // The lease that fills the window once the acks in `being_acked` are written (they no longer
  // count against it); nullopt when the window stays full, or when the reader is no longer
  // allowed (the stream is then closed). On strand.
  std::optional<storage::LeaseRequest> NextLease(const std::vector<uint64_t>& being_acked);
  // Sends what was leased and arms the timer for what becomes visible next. On strand.
  void Deliver(const storage::LeaseResult& leased);
  void FlushAcks();                                      // on strand
  void ArmTimer(std::optional<Micros> next_visible_at);  // on strand
  void FailAndClose(const absl::Status& status);         // on strand
  // Whether `sequence` was among the last deliveries of this stream. An answer to one of them
  // whose message is gone from the store is a duplicate: another copy (a redelivery after its
  // lease ran out, to this stream or another member) was acked, and retention pruned it since.
  // On strand.
  bool DeliveredHere(uint64_t sequence) const;
  // Stops pumping, gives unacked leases back to the group, unregisters. On strand.
  void Shutdown();
  refbroker::v1::Delivery ToDelivery(const storage::LeasedMessage& m) const;

  DeliveryEngine& engine_;
  const QueueName queue_;
  const std::string queue_text_;
  const std::string group_;
  const uint32_t window_;
  std::shared_ptr<DeliverySink> sink_;
  const Reader reader_;
  const storage::AckFollowUp ack_follow_up_;  // what a first ack also writes (may be empty)
  Strand strand_;
  boost::asio::steady_timer timer_;      // used on strand only
  std::map<uint64_t, Micros> inflight_;  // sequence → lease expiry; strand only
  // The sequences of the last deliveries, oldest overwritten first (up to 16 windows, and at
  // least 1,024; an idle stream holds none). Searched only for an answer whose message is gone.
  std::vector<uint64_t> delivered_;      // strand only
  size_t delivered_next_ = 0;            // where the next one goes once delivered_ is full
  bool started_ = false;                 // strand only
  bool closed_ = false;                  // strand only
  std::atomic<bool> pump_queued_{false};
  // Acks wait here for the strand and are written together, one transaction for all that came
  // in while the previous batch was being committed.
  std::mutex acks_mu_;
  std::vector<uint64_t> pending_acks_;  // guarded by acks_mu_
  bool ack_flush_queued_ = false;       // guarded by acks_mu_
};

}  // namespace refbroker::delivery

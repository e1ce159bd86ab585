#pragma once
// File: client/refclient/subscriber.h
//
// Subscriber: reads one queue as a member of a consumer group, hands each delivery to your
// handler and acks or nacks it as the handler decides. It reconnects after transient failures
// and resumes where the group left off (positions are kept by the broker), so a county
// hospital's interface engine can run it forever.
//
// Example (a county hospital referral office):
//
//   refclient::SubscriberOptions opts;
//   opts.queue.set_owner("12411723417580001B");          // our own credit code
//   opts.queue.set_kind(refbroker::v1::REFERRALS);
//   opts.group = "his";
//   refclient::Subscriber sub(conn, opts);
//   std::thread t([&] {
//     sub.Run([](const refbroker::v1::Delivery& d) {
//       if (!SaveToHis(d.referral())) return refclient::Decision::Nack("HIS down");
//       return refclient::Decision::Ack();                // only after it is safely stored
//     });
//   });
//   ...
//   sub.Stop();
//   t.join();

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "client/refclient/connection.h"
#include "refbroker/v1/delivery.grpc.pb.h"

namespace refclient {

/// What to do with one delivery.
struct Decision {
  enum class Kind { kAck, kNack, kNone };
  Kind kind = Kind::kAck;
  std::string reason;  ///< for kNack: shown to operators; no patient data

  static Decision Ack() { return {Kind::kAck, ""}; }
  static Decision Nack(std::string why) { return {Kind::kNack, std::move(why)}; }
  /// Neither: the broker redelivers it after the ack deadline (tests, or a later Ack()).
  static Decision None() { return {Kind::kNone, ""}; }
};

struct SubscriberOptions {
  refbroker::v1::QueueRef queue;
  std::string group = "default";
  uint32_t window = 16;      ///< most unacked deliveries the broker sends
  uint64_t replay_from = 0;  ///< on the first connection only: replay from this sequence
  std::chrono::milliseconds reconnect_backoff{200};
  std::chrono::milliseconds max_reconnect_backoff{3000};
  /// Stop() waits this long for the broker to end the stream after its half-close (the
  /// decisions written before it are then processed), and cancels the call after that.
  std::chrono::milliseconds stop_grace{5000};
};

class Subscriber {
 public:
  using Handler = std::function<Decision(const refbroker::v1::Delivery&)>;

  Subscriber(Connection& connection, SubscriberOptions options)
      : connection_(connection), options_(std::move(options)) {}

  /// Delivers until Stop() (returns OK) or a permanent error (UNAUTHENTICATED,
  /// PERMISSION_DENIED, INVALID_ARGUMENT, ...), which it returns. Transient errors reconnect.
  absl::Status Run(const Handler& handler);
  /// Thread-safe, and may be called from the handler. Ends gracefully: the decision of a
  /// handler that is running is still sent, then the stream is half-closed and the broker ends
  /// it once it has processed every decision before the half-close (a nack is redelivered to
  /// another consumer at once, not after the ack deadline). Deliveries that arrive after it are
  /// not handed to the handler: the broker redelivers them after the ack deadline. From another
  /// thread, Stop waits until Run's connection has ended, for at most `stop_grace`, and then
  /// cancels the call; Run returns soon after.
  void Stop();
  /// Sends an ack for a delivery the handler answered with Decision::None(). Thread-safe;
  /// false once the subscriber is stopping.
  bool Ack(uint64_t sequence);

  /// Number of (re)connections made so far.
  int connections() const { return connections_.load(); }

 private:
  absl::Status RunOnce(const std::shared_ptr<grpc::Channel>& channel, const Handler& handler,
                       bool first);
  // With mu_ held: half-closes the current stream, once.
  void HalfCloseLocked();

  Connection& connection_;
  SubscriberOptions options_;
  std::atomic<bool> stopped_{false};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  grpc::ClientContext* context_ = nullptr;  // guarded by mu_
  grpc::ClientReaderWriter<refbroker::v1::SubscribeRequest, refbroker::v1::Delivery>* stream_ =
      nullptr;                        // guarded by mu_ (for Ack)
  bool opening_ = false;              // guarded by mu_: the open request is being written
  bool in_handler_ = false;           // guarded by mu_
  bool half_closed_ = false;          // guarded by mu_
  std::thread::id run_thread_;        // the thread in Run; guarded by mu_
  std::condition_variable ended_cv_;  // a connection ended (context_ back to nullptr)
};

}  // namespace refclient

#include "client/refclient/subscriber.h"

#include <thread>

namespace refclient {
namespace {

bool IsPermanent(const absl::Status& s) {
  return absl::IsUnauthenticated(s) || absl::IsPermissionDenied(s) || absl::IsInvalidArgument(s) ||
         absl::IsFailedPrecondition(s) || absl::IsUnimplemented(s);
}

}  // namespace

absl::Status Subscriber::Run(const Handler& handler) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    run_thread_ = std::this_thread::get_id();
  }
  auto backoff = options_.reconnect_backoff;
  bool first = true;
  while (!stopped_) {
    auto channel = connection_.channel();
    absl::Status s = RunOnce(channel, handler, first);
    first = false;
    if (stopped_) break;
    if (IsPermanent(s)) return s;
    if (absl::IsUnavailable(s)) connection_.Failover(channel);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, options_.max_reconnect_backoff);
  }
  return absl::OkStatus();
}

absl::Status Subscriber::RunOnce(const std::shared_ptr<grpc::Channel>& channel,
                                 const Handler& handler, bool first) {
  auto stub = refbroker::v1::DeliveryService::NewStub(channel);
  grpc::ClientContext ctx;
  // With one broker the stream waits for it to be reachable; with several it fails fast
  // (UNAVAILABLE) on one that is down, and Run moves on to the next.
  ctx.set_wait_for_ready(!connection_.has_alternatives());
  {
    // Stop may cancel from here on: opening the stream already waits for the broker.
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return absl::OkStatus();
    context_ = &ctx;
    half_closed_ = false;
    opening_ = true;
  }
  auto stream = stub->Subscribe(&ctx);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream_ = stream.get();
  }
  connections_++;
  refbroker::v1::SubscribeRequest open;
  *open.mutable_open()->mutable_queue() = options_.queue;
  open.mutable_open()->set_consumer_group(options_.group);
  open.mutable_open()->set_window(options_.window);
  if (first) open.mutable_open()->set_replay_from(options_.replay_from);
  // Not under mu_: with wait_for_ready this write waits for the broker to be reachable, and
  // Stop meanwhile cancels the call (there is no decision to send yet).
  bool ok = stream->Write(open);
  {
    std::lock_guard<std::mutex> lock(mu_);
    opening_ = false;
    if (stopped_) HalfCloseLocked();  // stopped while opening: end at once
  }
  refbroker::v1::Delivery delivery;
  // Stopped from the handler, nobody is in Stop to bound the wait for the broker to end the
  // stream after the half-close: this watchdog cancels the call after the grace period.
  std::thread watchdog;
  bool read_ended = false;  // guarded by mu_
  // After Stop, the loop only reads on until the broker ends the stream: what arrives then is
  // not handled, and is redelivered after the ack deadline.
  while (ok && stream->Read(&delivery)) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) continue;
      in_handler_ = true;
    }
    Decision d = handler(delivery);
    refbroker::v1::SubscribeRequest answer;
    if (d.kind == Decision::Kind::kAck) {
      answer.mutable_ack()->set_sequence(delivery.sequence());
    } else if (d.kind == Decision::Kind::kNack) {
      answer.mutable_nack()->set_sequence(delivery.sequence());
      answer.mutable_nack()->set_reason(d.reason);
    }
    std::lock_guard<std::mutex> lock(mu_);
    in_handler_ = false;
    if (answer.request_case() != refbroker::v1::SubscribeRequest::REQUEST_NOT_SET) {
      ok = stream->Write(answer);
    }
    // Stopped while the handler ran (perhaps by the handler): its decision is out, now the
    // half-close.
    if (stopped_ && !half_closed_) {
      HalfCloseLocked();
      watchdog = std::thread([&, grace = options_.stop_grace] {
        std::unique_lock<std::mutex> wait(mu_);
        if (!ended_cv_.wait_for(wait, grace, [&] { return read_ended; })) ctx.TryCancel();
      });
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  HalfCloseLocked();
  read_ended = true;
  context_ = nullptr;
  stream_ = nullptr;
  lock.unlock();
  ended_cv_.notify_all();
  if (watchdog.joinable()) watchdog.join();
  return FromGrpc(stream->Finish());
}

void Subscriber::HalfCloseLocked() {
  if (stream_ == nullptr || half_closed_) return;
  half_closed_ = true;
  stream_->WritesDone();
}

bool Subscriber::Ack(uint64_t sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stream_ == nullptr || half_closed_) return false;
  refbroker::v1::SubscribeRequest answer;
  answer.mutable_ack()->set_sequence(sequence);
  return stream_->Write(answer);
}

void Subscriber::Stop() {
  std::unique_lock<std::mutex> lock(mu_);
  stopped_ = true;
  if (context_ == nullptr) return;
  if (opening_) {  // still waiting to open: nothing to send, and a write may be under way
    context_->TryCancel();
    return;
  }
  // A running handler's decision goes out first: Run half-closes after writing it.
  if (!in_handler_) HalfCloseLocked();
  if (std::this_thread::get_id() == run_thread_) return;  // from the handler
  grpc::ClientContext* ctx = context_;
  if (!ended_cv_.wait_for(lock, options_.stop_grace, [&] { return context_ != ctx; })) {
    ctx->TryCancel();
  }
}

}  // namespace refclient

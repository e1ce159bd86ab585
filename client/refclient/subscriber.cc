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
  auto backoff = options_.reconnect_backoff;
  bool first = true;
  while (!stopped_) {
    absl::Status s = RunOnce(handler, first);
    first = false;
    if (stopped_) break;
    if (IsPermanent(s)) return s;
    if (absl::IsUnavailable(s)) connection_.Failover();
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, options_.max_reconnect_backoff);
  }
  return absl::OkStatus();
}

absl::Status Subscriber::RunOnce(const Handler& handler, bool first) {
  auto stub = refbroker::v1::DeliveryService::NewStub(connection_.channel());
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  auto stream = stub->Subscribe(&ctx);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return absl::OkStatus();
    context_ = &ctx;
    stream_ = stream.get();
  }
  connections_++;
  refbroker::v1::SubscribeRequest open;
  *open.mutable_open()->mutable_queue() = options_.queue;
  open.mutable_open()->set_consumer_group(options_.group);
  open.mutable_open()->set_window(options_.window);
  if (first) open.mutable_open()->set_replay_from(options_.replay_from);
  bool ok = stream->Write(open);
  refbroker::v1::Delivery delivery;
  while (ok && stream->Read(&delivery)) {
    Decision d = handler(delivery);
    refbroker::v1::SubscribeRequest answer;
    if (d.kind == Decision::Kind::kAck) {
      answer.mutable_ack()->set_sequence(delivery.sequence());
    } else if (d.kind == Decision::Kind::kNack) {
      answer.mutable_nack()->set_sequence(delivery.sequence());
      answer.mutable_nack()->set_reason(d.reason);
    } else {
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    ok = stream->Write(answer);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stream->WritesDone();
    context_ = nullptr;
    stream_ = nullptr;
  }
  return FromGrpc(stream->Finish());
}

bool Subscriber::Ack(uint64_t sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stream_ == nullptr) return false;
  refbroker::v1::SubscribeRequest answer;
  answer.mutable_ack()->set_sequence(sequence);
  return stream_->Write(answer);
}

void Subscriber::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

}  // namespace refclient

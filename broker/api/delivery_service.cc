#include "broker/api/delivery_service.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "broker/api/internal/serial_writer.h"
#include "broker/api/status_convert.h"
#include "broker/delivery/delivery_sink.h"

namespace refbroker::api {
namespace {

using refbroker::v1::Delivery;
using refbroker::v1::SubscribeRequest;
using Reactor = grpc::ServerBidiReactor<SubscribeRequest, Delivery>;

constexpr uint32_t kDefaultWindow = 16;

bool ValidGroupName(const std::string& g) {
  if (g.empty() || g.size() > 64) return false;
  for (char c : g) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

// The Subscribe stream's writer, as the delivery engine's sink.
class StreamSink final : public delivery::DeliverySink,
                         public internal::SerialWriter<SubscribeRequest, Delivery> {
 public:
  explicit StreamSink(Reactor* reactor) : SerialWriter(reactor) {}
  void Send(Delivery d) override { Write(std::move(d)); }
  void Fail(const absl::Status& status) override { Finish(status); }
};

class SubscribeReactor final : public Reactor {
 public:
  SubscribeReactor(ServiceContext& ctx, grpc::CallbackServerContext* context)
      : ctx_(ctx), sink_(std::make_shared<StreamSink>(this)) {
    auto principal = ctx_.authenticator.Authenticate(context->auth_context().get());
    if (!principal.ok()) {
      ctx_.metrics.CountRpc("Subscribe", principal.status().code());
      sink_->Fail(principal.status());
      return;
    }
    who_ = *principal;
    if (absl::Status s = ctx_.limiter.OpenStream(*who_); !s.ok()) {
      ctx_.metrics.CountRpc("Subscribe", s.code());
      sink_->Fail(s);
      return;
    }
    counted_ = true;
    peer_ = context->peer();
    recheck_ = ctx_.authenticator.RecheckFor(context->auth_context());
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side or went away
      sink_->Fail(absl::OkStatus());
      return;
    }
    absl::Status s = recheck_();  // a certificate revoked since the stream opened
    if (s.ok()) s = Handle();
    if (!s.ok()) {
      ctx_.metrics.CountRpc("Subscribe", s.code());
      sink_->Fail(s);
      return;
    }
    if (!sink_->finishing()) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override { sink_->OnWriteDone(ok); }

  void OnDone() override {
    if (counted_) ctx_.limiter.CloseStream(*who_);
    sink_->Detach();
    if (subscription_) subscription_->Close();
    delete this;
  }

 private:
  absl::Status Handle() {
    switch (request_.request_case()) {
      case SubscribeRequest::kOpen:
        return Open(request_.open());
      case SubscribeRequest::kAck:
        if (!subscription_) return absl::InvalidArgumentError("open: must be the first message");
        subscription_->Ack(request_.ack().sequence());
        return absl::OkStatus();
      case SubscribeRequest::kNack:
        if (!subscription_) return absl::InvalidArgumentError("open: must be the first message");
        if (request_.nack().reason().size() > 200) {
          return absl::InvalidArgumentError("nack.reason: longer than 200 bytes");
        }
        subscription_->Nack(request_.nack().sequence(), request_.nack().reason());
        return absl::OkStatus();
      default:
        return absl::InvalidArgumentError("request: one of open, ack, nack is required");
    }
  }

  absl::Status Open(const refbroker::v1::SubscribeOpen& open) {
    if (subscription_) return absl::InvalidArgumentError("open: sent twice on one stream");
    auto queue = QueueName::FromProto(open.queue(), "open.queue");
    if (!queue.ok()) return queue.status();
    if (!ValidGroupName(open.consumer_group())) {
      return absl::InvalidArgumentError("open.consumer_group: required, [A-Za-z0-9._-]{1,64}");
    }
    uint32_t window = open.window() == 0 ? kDefaultWindow : open.window();
    if (window > static_cast<uint32_t>(ctx_.delivery_options.max_window)) {
      return absl::InvalidArgumentError(
          absl::StrCat("open.window: at most ", ctx_.delivery_options.max_window));
    }
    if (absl::Status s = ctx_.policy.CanConsume(*who_, *queue); !s.ok()) return s;
    spdlog::info("subscribe principal={} queue={} group={} window={}", who_->id, queue->ToString(),
                 open.consumer_group(), window);
    ctx_.metrics.CountRpc("Subscribe", absl::StatusCode::kOk);
    subscription_ =
        ctx_.engine.Subscribe(*queue, open.consumer_group(), window, open.replay_from(), sink_,
                              delivery::Reader{who_->id, who_->alliance, peer_, recheck_});
    return absl::OkStatus();
  }

  ServiceContext& ctx_;
  std::shared_ptr<StreamSink> sink_;
  const auth::Principal* who_ = nullptr;
  std::string peer_;
  auth::Authenticator::Recheck recheck_;
  bool counted_ = false;  // counted against the principal's stream limit
  SubscribeRequest request_;
  std::shared_ptr<delivery::Subscription> subscription_;
};

}  // namespace

Reactor* DeliveryServiceImpl::Subscribe(grpc::CallbackServerContext* context) {
  return new SubscribeReactor(ctx_, context);
}

}  // namespace refbroker::api

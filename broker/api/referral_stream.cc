#include "broker/api/referral_stream.h"

#include <chrono>
#include <memory>
#include <mutex>

#include "broker/api/internal/serial_writer.h"
#include "broker/api/internal/unary_call.h"
#include "broker/common/status_macros.h"

namespace refbroker::api {
namespace {

using refbroker::v1::SubmitReferralRequest;
using refbroker::v1::SubmitReferralsResult;
using Reactor = grpc::ServerBidiReactor<SubmitReferralRequest, SubmitReferralsResult>;

constexpr const char* kMethod = "SubmitReferrals";

// What the stream's reactor shares with the workers answering its requests. It outlives the
// reactor (the workers hold it): after Detach its writes and reads do nothing.
class StreamState final
    : public internal::SerialWriter<SubmitReferralRequest, SubmitReferralsResult> {
 public:
  explicit StreamState(Reactor* reactor) : SerialWriter(reactor) {}

  // The read has completed with a request in `request`: takes it, counts it in flight and
  // starts the next read unless the read-ahead is used up. Returns the request's position.
  uint64_t TakeRead(SubmitReferralRequest* out) {
    bool read_next = false;
    uint64_t position = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = false;
      *out = std::move(request_);
      request_.Clear();
      position = ++read_count_;
      ++in_flight_;
      if (in_flight_ < kSubmitStreamReadAhead) read_next = reading_ = true;
    }
    if (read_next) Read(&request_);
    return position;
  }

  // The client closed its side: the stream ends once every request read is answered.
  void HalfClose() {
    bool done = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = false;
      half_closed_ = true;
      done = in_flight_ == 0;
    }
    if (done) FinishAfterWrites(absl::OkStatus());
  }

  // Writes the answer of one request, then reads on (if the read-ahead was used up) or ends
  // the stream (if the client has closed its side and this was the last one).
  void Answer(SubmitReferralsResult result) {
    Write(std::move(result));
    bool read_next = false, done = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      --in_flight_;
      if (half_closed_) {
        done = in_flight_ == 0;
      } else if (!reading_) {
        read_next = reading_ = true;
      }
    }
    if (read_next) Read(&request_);
    if (done) FinishAfterWrites(absl::OkStatus());
  }

  void StartFirstRead() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = true;
    }
    Read(&request_);
  }

 private:
  std::mutex mu_;
  SubmitReferralRequest request_;  // the read in progress
  uint64_t read_count_ = 0;
  int in_flight_ = 0;     // read, not yet answered
  bool reading_ = false;  // a read started and not yet done
  bool half_closed_ = false;
};

class SubmitReferralsReactor final : public Reactor {
 public:
  SubmitReferralsReactor(ServiceContext& ctx, grpc::CallbackServerContext* context)
      : ctx_(ctx), state_(std::make_shared<StreamState>(this)) {
    base_.action = kMethod;
    base_.peer = context->peer();
    auto principal = ctx_.authenticator.Authenticate(context->auth_context().get());
    if (!principal.ok()) {
      if (ctx_.limiter.AuditRefusal(base_.peer, ctx_.engine.clock().Now())) {
        ctx_.engine.RunBlocking([&ctx = ctx_, base = base_, status = principal.status()]() {
          internal::RecordUnauthenticated(ctx, base, kMethod, status);
        });
      } else {
        ctx_.metrics.CountRpc(kMethod, principal.status().code());
      }
      state_->Finish(principal.status());
      return;
    }
    who_ = *principal;
    if (absl::Status s = ctx_.limiter.OpenStream(*who_); !s.ok()) {
      ctx_.metrics.CountRpc(kMethod, s.code());
      state_->Finish(s);
      return;
    }
    counted_ = true;
    recheck_ = ctx_.authenticator.RecheckFor(context->auth_context());
    base_.actor = who_->id;
    base_.alliance = who_->alliance;
    state_->StartFirstRead();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side, or went away
      state_->HalfClose();
      return;
    }
    auto request = std::make_shared<SubmitReferralRequest>();
    uint64_t position = state_->TakeRead(request.get());
    Dispatch(position, std::move(request));
  }

  void OnWriteDone(bool ok) override { state_->OnWriteDone(ok); }

  void OnDone() override {
    if (counted_) ctx_.limiter.CloseStream(*who_);
    state_->Detach();
    delete this;
  }

 private:
  void Dispatch(uint64_t position, std::shared_ptr<SubmitReferralRequest> request) {
    const auto received = std::chrono::steady_clock::now();
    // Each request counts against the principal's call rate, as a unary submit would.
    if (absl::Status s = ctx_.limiter.AdmitCall(*who_, ctx_.engine.clock().Now()); !s.ok()) {
      ctx_.metrics.CountRpc(kMethod, s.code());
      state_->Answer(Result(position, s));
      return;
    }
    ctx_.engine.RunBlocking([&ctx = ctx_, state = state_, who = who_, base = base_, position,
                             request = std::move(request), received, recheck = recheck_]() {
      SubmitReferralsResult result;
      absl::Status s = internal::RunAudited(
          ctx, *who, base, kMethod, received, [&](const auth::Principal& caller) -> absl::Status {
            // A certificate revoked since the stream opened: each further request is refused.
            RETURN_IF_ERROR(recheck());
            if (!request->has_referral()) return absl::InvalidArgumentError("referral: required");
            auto outcome = ctx.workflow.Submit(caller, request->referral());
            ctx.metrics.ObserveSubmitLatency(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - received).count());
            if (!outcome.ok()) return outcome.status();
            *result.mutable_referral() = std::move(outcome->referral);
            result.set_duplicate(outcome->duplicate);
            return absl::OkStatus();
          });
      if (!s.ok()) result.Clear();
      SubmitReferralsResult answer = Result(position, s);
      answer.MergeFrom(result);
      state->Answer(std::move(answer));
    });
  }

  static SubmitReferralsResult Result(uint64_t position, const absl::Status& s) {
    SubmitReferralsResult r;
    r.set_position(position);
    r.set_code(static_cast<int32_t>(s.code()));
    if (!s.ok()) r.set_message(std::string(s.message()));
    return r;
  }

  ServiceContext& ctx_;
  std::shared_ptr<StreamState> state_;
  const auth::Principal* who_ = nullptr;
  auth::Authenticator::Recheck recheck_;
  bool counted_ = false;  // counted against the principal's stream limit
  storage::AuditRow base_;
};

}  // namespace

Reactor* NewSubmitReferralsReactor(ServiceContext& ctx, grpc::CallbackServerContext* context) {
  return new SubmitReferralsReactor(ctx, context);
}

}  // namespace refbroker::api

#include "broker/api/referral_service.h"

#include <chrono>

#include "broker/api/internal/unary_call.h"
#include "broker/api/referral_stream.h"

namespace refbroker::api {

grpc::ServerUnaryReactor* ReferralServiceImpl::SubmitReferral(
    grpc::CallbackServerContext* context, const refbroker::v1::SubmitReferralRequest* request,
    refbroker::v1::SubmitReferralResponse* response) {
  auto start = std::chrono::steady_clock::now();
  return internal::ServeUnary(
      ctx_, context, "SubmitReferral",
      [this, request, response, start](const auth::Principal& who) -> absl::Status {
        if (!request->has_referral()) return absl::InvalidArgumentError("referral: required");
        auto outcome = ctx_.workflow.Submit(who, request->referral());
        ctx_.metrics.ObserveSubmitLatency(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        if (!outcome.ok()) return outcome.status();
        *response->mutable_referral() = std::move(outcome->referral);
        response->set_duplicate(outcome->duplicate);
        return absl::OkStatus();
      });
}

grpc::ServerBidiReactor<refbroker::v1::SubmitReferralRequest, refbroker::v1::SubmitReferralsResult>*
ReferralServiceImpl::SubmitReferrals(grpc::CallbackServerContext* context) {
  return NewSubmitReferralsReactor(ctx_, context);
}

grpc::ServerUnaryReactor* ReferralServiceImpl::GetReferral(
    grpc::CallbackServerContext* context, const refbroker::v1::GetReferralRequest* request,
    refbroker::v1::Referral* response) {
  return internal::ServeUnary(
      ctx_, context, "GetReferral",
      [this, request, response](const auth::Principal& who) -> absl::Status {
        auto referral = ctx_.workflow.Get(who, request->id());
        if (!referral.ok()) return referral.status();
        *response = std::move(*referral);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ReferralServiceImpl::TransitionReferral(
    grpc::CallbackServerContext* context, const refbroker::v1::TransitionReferralRequest* request,
    refbroker::v1::TransitionReferralResponse* response) {
  return internal::ServeUnary(
      ctx_, context, "TransitionReferral",
      [this, request, response](const auth::Principal& who) -> absl::Status {
        auto outcome = ctx_.workflow.Transition(who, *request);
        if (!outcome.ok()) return outcome.status();
        *response->mutable_referral() = std::move(outcome->referral);
        response->set_duplicate(outcome->duplicate);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ReferralServiceImpl::ListReferrals(
    grpc::CallbackServerContext* context, const refbroker::v1::ListReferralsRequest* request,
    refbroker::v1::ListReferralsResponse* response) {
  return internal::ServeUnary(
      ctx_, context, "ListReferrals",
      [this, request, response](const auth::Principal& who) -> absl::Status {
        auto list = ctx_.workflow.List(who, *request);
        if (!list.ok()) return list.status();
        *response = std::move(*list);
        return absl::OkStatus();
      });
}

}  // namespace refbroker::api

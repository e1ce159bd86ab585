#include "broker/api/referral_service.h"

#include <chrono>

#include "broker/api/internal/unary_call.h"

namespace refbroker::api {

grpc::ServerUnaryReactor* ReferralServiceImpl::SubmitReferral(
    grpc::CallbackServerContext* context, const refbroker::v1::SubmitReferralRequest* request,
    refbroker::v1::SubmitReferralResponse* response) {
  auto start = std::chrono::steady_clock::now();
  return internal::ServeUnary(
      ctx_, context, "SubmitReferral",
      [this, request, response, start](const auth::Principal& who) -> absl::Status {
        if (!request->has_referral()) return absl::InvalidArgumentError("referral: required");
        auto outcome = ctx_.intake.Submit(who, request->referral());
        ctx_.metrics.ObserveSubmitLatency(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        if (!outcome.ok()) return outcome.status();
        *response->mutable_referral() = std::move(outcome->referral);
        response->set_duplicate(outcome->duplicate);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ReferralServiceImpl::GetReferral(
    grpc::CallbackServerContext* context, const refbroker::v1::GetReferralRequest* request,
    refbroker::v1::Referral* response) {
  return internal::ServeUnary(
      ctx_, context, "GetReferral",
      [this, request, response](const auth::Principal& who) -> absl::Status {
        std::string sender, receiver;
        auto referral = ctx_.intake.Get(request->id(), &sender, &receiver);
        if (!referral.ok()) return referral.status();
        // Unknown ids are NOT_FOUND, others' PERMISSION_DENIED: ids are unguessable ULIDs, and
        // a sender needs NOT_FOUND to tell a lost submission from a foreign one.
        if (absl::Status s = ctx_.policy.CanReadReferral(who, sender, receiver); !s.ok()) return s;
        *response = std::move(*referral);
        return absl::OkStatus();
      });
}

}  // namespace refbroker::api

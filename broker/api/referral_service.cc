#include "broker/api/referral_service.h"

#include <chrono>

#include "broker/api/status_convert.h"

namespace refbroker::api {

grpc::ServerUnaryReactor* ReferralServiceImpl::SubmitReferral(
    grpc::CallbackServerContext* context, const refbroker::v1::SubmitReferralRequest* request,
    refbroker::v1::SubmitReferralResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto principal = ctx_.authenticator.Authenticate(context->auth_context().get());
  if (!principal.ok()) {
    ctx_.metrics.CountRpc("SubmitReferral", principal.status().code());
    reactor->Finish(ToGrpcStatus(principal.status()));
    return reactor;
  }
  const auth::Principal* who = *principal;
  auto start = std::chrono::steady_clock::now();
  ctx_.engine.RunBlocking([this, reactor, request, response, who, start] {
    absl::Status status;
    if (!request->has_referral()) {
      status = absl::InvalidArgumentError("referral: required");
    } else {
      auto outcome = ctx_.intake.Submit(*who, request->referral());
      status = outcome.status();
      if (outcome.ok()) {
        *response->mutable_referral() = std::move(outcome->referral);
        response->set_duplicate(outcome->duplicate);
      }
    }
    ctx_.metrics.CountRpc("SubmitReferral", status.code());
    ctx_.metrics.ObserveSubmitLatency(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

grpc::ServerUnaryReactor* ReferralServiceImpl::GetReferral(
    grpc::CallbackServerContext* context, const refbroker::v1::GetReferralRequest* request,
    refbroker::v1::Referral* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto principal = ctx_.authenticator.Authenticate(context->auth_context().get());
  if (!principal.ok()) {
    ctx_.metrics.CountRpc("GetReferral", principal.status().code());
    reactor->Finish(ToGrpcStatus(principal.status()));
    return reactor;
  }
  const auth::Principal* who = *principal;
  ctx_.engine.RunBlocking([this, reactor, request, response, who] {
    std::string sender, receiver;
    auto referral = ctx_.intake.Get(request->id(), &sender, &receiver);
    absl::Status status = referral.status();
    if (status.ok()) status = ctx_.policy.CanReadReferral(*who, sender, receiver);
    // An unknown id and a forbidden one look different on purpose: ids are unguessable ULIDs,
    // and the sender needs NOT_FOUND to tell a lost submission from a foreign one.
    if (status.ok()) *response = std::move(*referral);
    ctx_.metrics.CountRpc("GetReferral", status.code());
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

}  // namespace refbroker::api

#pragma once
// gRPC adapter for refbroker.v1.ReferralService (callback API). Authenticates, then runs the
// blocking domain call on the engine's worker pool and finishes the reactor from there.

#include "broker/api/service_context.h"
#include "refbroker/v1/referral.grpc.pb.h"

namespace refbroker::api {

class ReferralServiceImpl final : public refbroker::v1::ReferralService::CallbackService {
 public:
  explicit ReferralServiceImpl(ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* SubmitReferral(
      grpc::CallbackServerContext* context, const refbroker::v1::SubmitReferralRequest* request,
      refbroker::v1::SubmitReferralResponse* response) override;
  grpc::ServerBidiReactor<refbroker::v1::SubmitReferralRequest,
                          refbroker::v1::SubmitReferralsResult>*
  SubmitReferrals(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetReferral(grpc::CallbackServerContext* context,
                                        const refbroker::v1::GetReferralRequest* request,
                                        refbroker::v1::Referral* response) override;
  grpc::ServerUnaryReactor* TransitionReferral(
      grpc::CallbackServerContext* context, const refbroker::v1::TransitionReferralRequest* request,
      refbroker::v1::TransitionReferralResponse* response) override;
  grpc::ServerUnaryReactor* ListReferrals(grpc::CallbackServerContext* context,
                                          const refbroker::v1::ListReferralsRequest* request,
                                          refbroker::v1::ListReferralsResponse* response) override;

 private:
  ServiceContext& ctx_;
};

}  // namespace refbroker::api

#pragma once
// The SubmitReferrals stream (see referral.proto): SubmitReferral pipelined. Each request read
// runs on the worker pool like a unary submit (authorization, validation, audit, durable before
// its answer), so a stream's requests share the store's group commits with each other and with
// every other caller; answers go out as they become durable, each naming its position.

#include <grpcpp/grpcpp.h>

#include "broker/api/service_context.h"
#include "refbroker/v1/referral.pb.h"

namespace refbroker::api {

// At most this many requests of one stream read and not yet answered.
inline constexpr int kSubmitStreamReadAhead = 256;

grpc::ServerBidiReactor<refbroker::v1::SubmitReferralRequest, refbroker::v1::SubmitReferralsResult>*
NewSubmitReferralsReactor(ServiceContext& ctx, grpc::CallbackServerContext* context);

}  // namespace refbroker::api

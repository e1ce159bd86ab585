#pragma once
// gRPC adapter for refbroker.v1.AdminService: queue status and dead letters for operators
// (their alliance) and institutions (their own queues).

#include "broker/api/service_context.h"
#include "refbroker/v1/admin.grpc.pb.h"

namespace refbroker::api {

class AdminServiceImpl final : public refbroker::v1::AdminService::CallbackService {
 public:
  AdminServiceImpl(ServiceContext& ctx, const auth::Registry& registry)
      : ctx_(ctx), registry_(registry) {}

  grpc::ServerUnaryReactor* ListQueues(grpc::CallbackServerContext* context,
                                       const refbroker::v1::ListQueuesRequest* request,
                                       refbroker::v1::ListQueuesResponse* response) override;
  grpc::ServerUnaryReactor* ListDeadLetters(
      grpc::CallbackServerContext* context, const refbroker::v1::ListDeadLettersRequest* request,
      refbroker::v1::ListDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* RequeueDeadLetter(
      grpc::CallbackServerContext* context, const refbroker::v1::RequeueDeadLetterRequest* request,
      refbroker::v1::RequeueDeadLetterResponse* response) override;

  // The queue table `who` may see (also rendered by the status page).
  absl::Status DoListQueues(const auth::Principal& who,
                            const refbroker::v1::ListQueuesRequest& request,
                            refbroker::v1::ListQueuesResponse& response);

 private:
  absl::Status DoListDeadLetters(const auth::Principal& who,
                                 const refbroker::v1::ListDeadLettersRequest& request,
                                 refbroker::v1::ListDeadLettersResponse& response);
  absl::Status DoRequeue(const auth::Principal& who,
                         const refbroker::v1::RequeueDeadLetterRequest& request,
                         refbroker::v1::RequeueDeadLetterResponse& response);

  ServiceContext& ctx_;
  const auth::Registry& registry_;
};

}  // namespace refbroker::api

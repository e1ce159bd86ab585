#pragma once
// gRPC adapter for refbroker.v1.ResultService (callback API).

#include "broker/api/service_context.h"
#include "broker/domain/result_workflow.h"
#include "refbroker/v1/result.grpc.pb.h"

namespace refbroker::api {

class ResultServiceImpl final : public refbroker::v1::ResultService::CallbackService {
 public:
  ResultServiceImpl(ServiceContext& ctx, domain::ResultWorkflow& results)
      : ctx_(ctx), results_(results) {}

  grpc::ServerUnaryReactor* PublishResult(grpc::CallbackServerContext* context,
                                          const refbroker::v1::PublishResultRequest* request,
                                          refbroker::v1::PublishResultResponse* response) override;
  grpc::ServerUnaryReactor* GetResult(grpc::CallbackServerContext* context,
                                      const refbroker::v1::GetResultRequest* request,
                                      refbroker::v1::ResultRecord* response) override;
  grpc::ServerUnaryReactor* RecognizeResults(grpc::CallbackServerContext* context,
                                             const refbroker::v1::RecognizeRequest* request,
                                             refbroker::v1::RecognizeResponse* response) override;
  grpc::ServerUnaryReactor* RecordRetest(grpc::CallbackServerContext* context,
                                         const refbroker::v1::RecordRetestRequest* request,
                                         refbroker::v1::RecordRetestResponse* response) override;
  grpc::ServerUnaryReactor* ListResults(grpc::CallbackServerContext* context,
                                        const refbroker::v1::ListResultsRequest* request,
                                        refbroker::v1::ListResultsResponse* response) override;
  grpc::ServerUnaryReactor* RetestSummary(grpc::CallbackServerContext* context,
                                          const refbroker::v1::RetestSummaryRequest* request,
                                          refbroker::v1::RetestSummaryResponse* response) override;

 private:
  ServiceContext& ctx_;
  domain::ResultWorkflow& results_;
};

}  // namespace refbroker::api

#include "broker/api/result_service.h"

#include "broker/api/internal/unary_call.h"

namespace refbroker::api {
using internal::Answer;

grpc::ServerUnaryReactor* ResultServiceImpl::PublishResult(
    grpc::CallbackServerContext* context, const refbroker::v1::PublishResultRequest* request,
    refbroker::v1::PublishResultResponse* response) {
  return Answer(ctx_, context, "PublishResult", response, [this, request](const auto& who) {
    return results_.Publish(who, request->result());
  });
}

grpc::ServerUnaryReactor* ResultServiceImpl::GetResult(
    grpc::CallbackServerContext* context, const refbroker::v1::GetResultRequest* request,
    refbroker::v1::ResultRecord* response) {
  return Answer(ctx_, context, "GetResult", response,
                [this, request](const auto& who) { return results_.Get(who, request->id()); });
}

grpc::ServerUnaryReactor* ResultServiceImpl::RecognizeResults(
    grpc::CallbackServerContext* context, const refbroker::v1::RecognizeRequest* request,
    refbroker::v1::RecognizeResponse* response) {
  return Answer(ctx_, context, "RecognizeResults", response,
                [this, request](const auto& who) { return results_.Recognize(who, *request); });
}

grpc::ServerUnaryReactor* ResultServiceImpl::RecordRetest(
    grpc::CallbackServerContext* context, const refbroker::v1::RecordRetestRequest* request,
    refbroker::v1::RecordRetestResponse* response) {
  return Answer(ctx_, context, "RecordRetest", response, [this, request](const auto& who) {
    return results_.RecordRetest(who, request->retest());
  });
}

grpc::ServerUnaryReactor* ResultServiceImpl::ListResults(
    grpc::CallbackServerContext* context, const refbroker::v1::ListResultsRequest* request,
    refbroker::v1::ListResultsResponse* response) {
  return Answer(ctx_, context, "ListResults", response,
                [this, request](const auto& who) { return results_.List(who, *request); });
}

grpc::ServerUnaryReactor* ResultServiceImpl::RetestSummary(
    grpc::CallbackServerContext* context, const refbroker::v1::RetestSummaryRequest* request,
    refbroker::v1::RetestSummaryResponse* response) {
  return Answer(ctx_, context, "RetestSummary", response,
                [this, request](const auto& who) { return results_.Summary(who, *request); });
}

}  // namespace refbroker::api

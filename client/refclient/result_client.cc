#include "client/refclient/result_client.h"

#include "client/refclient/internal/retry.h"

namespace refclient {
namespace {

using Service = refbroker::v1::ResultService;

template <typename Response, typename Call>
absl::StatusOr<Response> Run(Connection& connection, const RetryPolicy& retry, Call call) {
  return internal::CallWithRetries<Service, Response>(connection, retry, call);
}

using internal::Once;

}  // namespace

absl::StatusOr<refbroker::v1::PublishResultResponse> ResultClient::Publish(
    const refbroker::v1::ResultRecord& result) {
  refbroker::v1::PublishResultRequest req;
  *req.mutable_result() = result;
  return Run<refbroker::v1::PublishResultResponse>(
      connection_, retry_,
      [&](auto& stub, auto& ctx, auto& resp) { return stub.PublishResult(&ctx, req, &resp); });
}

absl::StatusOr<refbroker::v1::ResultRecord> ResultClient::Get(const std::string& id) {
  refbroker::v1::GetResultRequest req;
  req.set_id(id);
  return Run<refbroker::v1::ResultRecord>(
      connection_, Once(retry_),
      [&](auto& stub, auto& ctx, auto& resp) { return stub.GetResult(&ctx, req, &resp); });
}

absl::StatusOr<refbroker::v1::RecognizeResponse> ResultClient::Recognize(
    const refbroker::v1::RecognizeRequest& req) {
  return Run<refbroker::v1::RecognizeResponse>(
      connection_, Once(retry_),
      [&](auto& stub, auto& ctx, auto& resp) { return stub.RecognizeResults(&ctx, req, &resp); });
}

absl::StatusOr<refbroker::v1::RecordRetestResponse> ResultClient::RecordRetest(
    const refbroker::v1::Retest& retest) {
  refbroker::v1::RecordRetestRequest req;
  *req.mutable_retest() = retest;
  return Run<refbroker::v1::RecordRetestResponse>(
      connection_, retry_,
      [&](auto& stub, auto& ctx, auto& resp) { return stub.RecordRetest(&ctx, req, &resp); });
}

absl::StatusOr<refbroker::v1::ListResultsResponse> ResultClient::List(
    const refbroker::v1::ListResultsRequest& req) {
  return Run<refbroker::v1::ListResultsResponse>(
      connection_, Once(retry_),
      [&](auto& stub, auto& ctx, auto& resp) { return stub.ListResults(&ctx, req, &resp); });
}

absl::StatusOr<refbroker::v1::RetestSummaryResponse> ResultClient::Summary(
    const refbroker::v1::RetestSummaryRequest& req) {
  return Run<refbroker::v1::RetestSummaryResponse>(
      connection_, Once(retry_),
      [&](auto& stub, auto& ctx, auto& resp) { return stub.RetestSummary(&ctx, req, &resp); });
}

}  // namespace refclient

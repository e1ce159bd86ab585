#include "client/refclient/admin_client.h"

#include <chrono>

namespace refclient {
namespace {

template <typename Request, typename Response, typename Service = refbroker::v1::AdminService,
          typename Method>
absl::StatusOr<Response> Call(Connection& connection, const Request& request, Method method,
                              int timeout_s = 15) {
  auto stub = Service::NewStub(connection.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  Response response;
  absl::Status s = FromGrpc(((*stub).*method)(&ctx, request, &response));
  if (!s.ok()) return s;
  return response;
}

}  // namespace

absl::StatusOr<refbroker::v1::ListQueuesResponse> AdminClient::ListQueues(
    const std::string& owner) {
  refbroker::v1::ListQueuesRequest request;
  request.set_owner(owner);
  return Call<refbroker::v1::ListQueuesRequest, refbroker::v1::ListQueuesResponse>(
      connection_, request, &refbroker::v1::AdminService::Stub::ListQueues);
}

absl::StatusOr<refbroker::v1::ListDeadLettersResponse> AdminClient::ListDeadLetters(
    const refbroker::v1::ListDeadLettersRequest& request) {
  return Call<refbroker::v1::ListDeadLettersRequest, refbroker::v1::ListDeadLettersResponse>(
      connection_, request, &refbroker::v1::AdminService::Stub::ListDeadLetters);
}

absl::StatusOr<refbroker::v1::RequeueDeadLetterResponse> AdminClient::Requeue(
    const refbroker::v1::RequeueDeadLetterRequest& request) {
  return Call<refbroker::v1::RequeueDeadLetterRequest, refbroker::v1::RequeueDeadLetterResponse>(
      connection_, request, &refbroker::v1::AdminService::Stub::RequeueDeadLetter);
}

absl::StatusOr<refbroker::v1::AllianceReport> AdminClient::AllianceReport(
    const refbroker::v1::ReportRequest& request) {
  return Call<refbroker::v1::ReportRequest, refbroker::v1::AllianceReport,
              refbroker::v1::ReportService>(
      connection_, request, &refbroker::v1::ReportService::Stub::GetAllianceReport, 120);
}

absl::StatusOr<refbroker::v1::VerifyAuditResponse> AdminClient::VerifyAudit() {
  return Call<refbroker::v1::VerifyAuditRequest, refbroker::v1::VerifyAuditResponse,
              refbroker::v1::AuditService>(connection_, refbroker::v1::VerifyAuditRequest(),
                                           &refbroker::v1::AuditService::Stub::VerifyAudit, 300);
}

absl::StatusOr<refbroker::v1::SearchAuditResponse> AdminClient::SearchAudit(
    const refbroker::v1::SearchAuditRequest& request) {
  return Call<refbroker::v1::SearchAuditRequest, refbroker::v1::SearchAuditResponse,
              refbroker::v1::AuditService>(connection_, request,
                                           &refbroker::v1::AuditService::Stub::SearchAudit);
}

}  // namespace refclient

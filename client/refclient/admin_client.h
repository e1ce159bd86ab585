#pragma once
// File: client/refclient/admin_client.h
//
// AdminClient: the operator's and auditor's calls (queue status, dead letters, the alliance
// report, the audit trail). Used by refctl.
//
// Example:
//
//   refclient::AdminClient admin(conn);
//   auto queues = admin.ListQueues();
//   for (const auto& q : queues->queues()) std::cout << q.owner_name() << " " << q.depth();

#include "absl/status/statusor.h"
#include "client/refclient/connection.h"
#include "refbroker/v1/admin.grpc.pb.h"
#include "refbroker/v1/audit.grpc.pb.h"
#include "refbroker/v1/report.grpc.pb.h"

namespace refclient {

class AdminClient {
 public:
  explicit AdminClient(Connection& connection) : connection_(connection) {}

  absl::StatusOr<refbroker::v1::ListQueuesResponse> ListQueues(const std::string& owner = "");
  absl::StatusOr<refbroker::v1::ListDeadLettersResponse> ListDeadLetters(
      const refbroker::v1::ListDeadLettersRequest& request);
  absl::StatusOr<refbroker::v1::RequeueDeadLetterResponse> Requeue(
      const refbroker::v1::RequeueDeadLetterRequest& request);
  // Operators and auditors of an alliance.
  absl::StatusOr<refbroker::v1::AllianceReport> AllianceReport(
      const refbroker::v1::ReportRequest& request);
  // Auditors only.
  absl::StatusOr<refbroker::v1::VerifyAuditResponse> VerifyAudit();
  absl::StatusOr<refbroker::v1::SearchAuditResponse> SearchAudit(
      const refbroker::v1::SearchAuditRequest& request);

 private:
  Connection& connection_;
};

}  // namespace refclient

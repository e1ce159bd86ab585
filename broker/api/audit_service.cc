#include "broker/api/audit_service.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "broker/api/internal/unary_call.h"
#include "broker/report/alliance_report.h"

namespace refbroker::api {
using google::protobuf::util::TimeUtil;
using internal::Answer;

grpc::ServerUnaryReactor* AuditServiceImpl::VerifyAudit(
    grpc::CallbackServerContext* context, const refbroker::v1::VerifyAuditRequest* /*request*/,
    refbroker::v1::VerifyAuditResponse* response) {
  return Answer(ctx_, context, "VerifyAudit", response,
                [this](const auto& who) { return trail_.Verify(who); });
}

grpc::ServerUnaryReactor* AuditServiceImpl::SearchAudit(
    grpc::CallbackServerContext* context, const refbroker::v1::SearchAuditRequest* request,
    refbroker::v1::SearchAuditResponse* response) {
  return Answer(ctx_, context, "SearchAudit", response,
                [this, request](const auto& who) { return trail_.Search(who, *request); });
}

grpc::ServerUnaryReactor* ReportServiceImpl::GetAllianceReport(
    grpc::CallbackServerContext* context, const refbroker::v1::ReportRequest* request,
    refbroker::v1::AllianceReport* response) {
  return Answer(
      ctx_, context, "GetAllianceReport", response,
      [this, request](const auth::Principal& who) -> absl::StatusOr<refbroker::v1::AllianceReport> {
        if (who.role != auth::Role::kOperator && who.role != auth::Role::kAuditor) {
          return absl::PermissionDeniedError(
              absl::StrCat("caller: ", who.id, " is not an operator or auditor of an alliance"));
        }
        if (!request->has_from()) return absl::InvalidArgumentError("from: required");
        if (!request->has_to()) return absl::InvalidArgumentError("to: required");
        Micros from = TimeUtil::TimestampToMicroseconds(request->from());
        Micros to = TimeUtil::TimestampToMicroseconds(request->to());
        if (to <= from) return absl::InvalidArgumentError("to: must be after from");
        if (to - from > 366LL * 24 * 3600 * 1000000) {
          return absl::InvalidArgumentError("to: at most 366 days after from");
        }
        return report::LoadAllianceReport(ctx_.engine.store(), registry_, who.alliance, from, to);
      });
}

}  // namespace refbroker::api

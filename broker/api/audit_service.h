#pragma once
// gRPC adapters for refbroker.v1.AuditService (auditors) and refbroker.v1.ReportService
// (operators and auditors of an alliance). Callback API.

#include "broker/api/service_context.h"
#include "broker/audit/audit_trail.h"
#include "broker/auth/registry.h"
#include "refbroker/v1/audit.grpc.pb.h"
#include "refbroker/v1/report.grpc.pb.h"

namespace refbroker::api {

class AuditServiceImpl final : public refbroker::v1::AuditService::CallbackService {
 public:
  AuditServiceImpl(ServiceContext& ctx, audit::AuditTrail& trail) : ctx_(ctx), trail_(trail) {}

  grpc::ServerUnaryReactor* VerifyAudit(grpc::CallbackServerContext* context,
                                        const refbroker::v1::VerifyAuditRequest* request,
                                        refbroker::v1::VerifyAuditResponse* response) override;
  grpc::ServerUnaryReactor* SearchAudit(grpc::CallbackServerContext* context,
                                        const refbroker::v1::SearchAuditRequest* request,
                                        refbroker::v1::SearchAuditResponse* response) override;

 private:
  ServiceContext& ctx_;
  audit::AuditTrail& trail_;
};

class ReportServiceImpl final : public refbroker::v1::ReportService::CallbackService {
 public:
  ReportServiceImpl(ServiceContext& ctx, const auth::Registry& registry)
      : ctx_(ctx), registry_(registry) {}

  grpc::ServerUnaryReactor* GetAllianceReport(grpc::CallbackServerContext* context,
                                              const refbroker::v1::ReportRequest* request,
                                              refbroker::v1::AllianceReport* response) override;

 private:
  ServiceContext& ctx_;
  const auth::Registry& registry_;
};

}  // namespace refbroker::api

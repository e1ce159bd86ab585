#pragma once
// gRPC adapter for refbroker.v1.ConsultService (callback API): unary methods through
// ServeUnary, and one ServerBidiReactor per live Session stream (ConsultSessions).

#include "broker/api/consult_sessions.h"
#include "broker/api/service_context.h"
#include "broker/domain/consult_workflow.h"
#include "refbroker/v1/consult.grpc.pb.h"

namespace refbroker::api {

class ConsultServiceImpl final : public refbroker::v1::ConsultService::CallbackService {
 public:
  ConsultServiceImpl(ServiceContext& ctx, domain::ConsultWorkflow& consults,
                     ConsultSessions& sessions)
      : ctx_(ctx), consults_(consults), sessions_(sessions) {}

  grpc::ServerUnaryReactor* RequestConsult(
      grpc::CallbackServerContext* context, const refbroker::v1::RequestConsultRequest* request,
      refbroker::v1::RequestConsultResponse* response) override;
  grpc::ServerUnaryReactor* GetConsult(grpc::CallbackServerContext* context,
                                       const refbroker::v1::GetConsultRequest* request,
                                       refbroker::v1::Consult* response) override;
  grpc::ServerUnaryReactor* TransitionConsult(
      grpc::CallbackServerContext* context, const refbroker::v1::TransitionConsultRequest* request,
      refbroker::v1::TransitionConsultResponse* response) override;
  grpc::ServerUnaryReactor* IssueReport(grpc::CallbackServerContext* context,
                                        const refbroker::v1::IssueReportRequest* request,
                                        refbroker::v1::IssueReportResponse* response) override;
  grpc::ServerUnaryReactor* PostMessage(grpc::CallbackServerContext* context,
                                        const refbroker::v1::PostMessageRequest* request,
                                        refbroker::v1::PostMessageResponse* response) override;
  grpc::ServerBidiReactor<refbroker::v1::SessionFrame, refbroker::v1::SessionFrame>* Session(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ConvertToReferral(
      grpc::CallbackServerContext* context, const refbroker::v1::ConvertToReferralRequest* request,
      refbroker::v1::ConvertToReferralResponse* response) override;
  grpc::ServerUnaryReactor* ListConsults(grpc::CallbackServerContext* context,
                                         const refbroker::v1::ListConsultsRequest* request,
                                         refbroker::v1::ListConsultsResponse* response) override;

 private:
  ServiceContext& ctx_;
  domain::ConsultWorkflow& consults_;
  ConsultSessions& sessions_;
};

}  // namespace refbroker::api

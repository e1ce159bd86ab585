#include "broker/api/consult_service.h"

#include <spdlog/spdlog.h>

#include "broker/api/internal/serial_writer.h"
#include "broker/api/internal/unary_call.h"

namespace refbroker::api {
namespace {

namespace v1 = refbroker::v1;
using internal::Answer;
using v1::SessionFrame;
using Reactor = grpc::ServerBidiReactor<SessionFrame, SessionFrame>;

// One live session: the first frame joins a consult (the caller must be one of its parties),
// every later frame posts a message. Each frame is handled on the worker pool, one at a time;
// the next read starts when it is done. Stored messages come back through ConsultSessions.
//
// The reactor may be deleted (OnDone) while a frame is being handled on the worker, e.g. when
// a write fails or the broker shuts down; so what the worker touches lives in a shared State,
// and the reactor itself is reached only through the writer, which is detached in OnDone.
class SessionReactor final : public Reactor {
 public:
  using Writer = internal::SerialWriter<SessionFrame, SessionFrame>;

  SessionReactor(ServiceContext& ctx, domain::ConsultWorkflow& consults, ConsultSessions& sessions,
                 grpc::CallbackServerContext* context)
      : state_(std::make_shared<State>(ctx, consults, sessions, this)) {
    auto principal = ctx.authenticator.Authenticate(context->auth_context().get());
    if (!principal.ok()) {
      ctx.metrics.CountRpc("Session", principal.status().code());
      state_->writer->Finish(principal.status());
      return;
    }
    state_->who = *principal;
    if (absl::Status s = ctx.limiter.OpenStream(**principal); !s.ok()) {
      ctx.metrics.CountRpc("Session", s.code());
      state_->writer->Finish(s);
      return;
    }
    state_->counted = true;
    state_->peer = context->peer();
    state_->recheck = ctx.authenticator.RecheckFor(context->auth_context());
    state_->writer->Read(&state_->frame);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side or went away
      state_->writer->Finish(absl::OkStatus());
      return;
    }
    state_->ctx.engine.RunBlocking([state = state_] {
      // Each frame is audited as a call: the join (a read of the consult) and each message.
      storage::AuditRow base;
      base.at = state->ctx.engine.clock().Now();
      base.actor = state->who->id;
      base.alliance = state->who->alliance;
      base.action = state->frame.frame_case() == SessionFrame::kJoinConsultId ? "Session.Join"
                                                                              : "Session.Message";
      base.peer = state->peer;
      storage::AuditScope audit(state->ctx.engine.store(), base);
      // A certificate revoked since the session opened ends it.
      absl::Status allowed = state->recheck();
      absl::Status s =
          internal::FinishAudit(state->ctx, audit, allowed.ok() ? state->Handle() : allowed);
      if (!s.ok()) {
        state->ctx.metrics.CountRpc("Session", s.code());
        state->writer->Finish(s);
        return;
      }
      state->writer->Read(&state->frame);
    });
  }

  void OnWriteDone(bool ok) override { state_->writer->OnWriteDone(ok); }

  void OnDone() override {
    if (state_->counted) state_->ctx.limiter.CloseStream(*state_->who);
    state_->writer->Detach();
    delete this;  // the State (and the session membership) goes with the last task holding it
  }

 private:
  struct State {
    State(ServiceContext& c, domain::ConsultWorkflow& w, ConsultSessions& s, Reactor* r)
        : ctx(c), consults(w), sessions(s), writer(std::make_shared<Writer>(r)) {}
    absl::Status Handle();
    absl::Status Join(const std::string& id);

    ServiceContext& ctx;
    domain::ConsultWorkflow& consults;
    ConsultSessions& sessions;
    std::shared_ptr<Writer> writer;
    const auth::Principal* who = nullptr;
    std::string peer;
    auth::Authenticator::Recheck recheck;
    bool counted = false;  // counted against the principal's stream limit
    SessionFrame frame;    // the read buffer; one read at a time
    std::unique_ptr<ConsultSessions::Membership> membership;
    std::string consult_id;
  };

  std::shared_ptr<State> state_;
};

absl::Status SessionReactor::State::Join(const std::string& id) {
  if (membership) return absl::InvalidArgumentError("join_consult_id: sent twice");
  auto rec = consults.PartyRecord(*who, id);
  if (!rec.ok()) return rec.status();
  std::weak_ptr<Writer> weak = writer;
  ConsultSessions::Member member;
  member.write = [weak, recheck = recheck](const v1::ConsultMessage& m) {
    if (auto w = weak.lock()) {
      // A member whose certificate was revoked since it joined is sent nothing more.
      if (absl::Status allowed = recheck(); !allowed.ok()) {
        w->Finish(allowed);
        return;
      }
      SessionFrame out;
      *out.mutable_message() = m;
      w->Write(std::move(out));
    }
  };
  member.close = [weak] {
    if (auto w = weak.lock()) w->Finish(absl::UnavailableError("broker shutting down"));
  };
  membership = sessions.Join(rec->id, std::move(member));
  consult_id = rec->id;
  SessionFrame admitted;
  admitted.set_join_consult_id(consult_id);
  writer->Write(std::move(admitted));
  spdlog::info("consult session joined consult={} by={}", consult_id, who->id);
  ctx.metrics.CountRpc("Session", absl::StatusCode::kOk);
  return absl::OkStatus();
}

absl::Status SessionReactor::State::Handle() {
  if (frame.frame_case() == SessionFrame::kJoinConsultId) return Join(frame.join_consult_id());
  if (!membership) return absl::InvalidArgumentError("join_consult_id: must be the first frame");
  if (frame.frame_case() != SessionFrame::kMessage) {
    return absl::InvalidArgumentError("frame: a message is required");
  }
  v1::ConsultMessage m = frame.message();
  if (m.consult_id().empty()) m.set_consult_id(consult_id);
  if (m.consult_id() != consult_id) {
    return absl::InvalidArgumentError("message.consult_id: not the consult of this session");
  }
  auto stored = consults.Post(*who, m);
  if (!stored.ok()) return stored.status();
  if (stored->duplicate) {  // a retry is not published again: confirm it to the author here
    SessionFrame out;
    *out.mutable_message() = stored->value;
    writer->Write(std::move(out));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* ConsultServiceImpl::RequestConsult(
    grpc::CallbackServerContext* context, const v1::RequestConsultRequest* request,
    v1::RequestConsultResponse* response) {
  return internal::ServeUnary(
      ctx_, context, "RequestConsult",
      [this, request, response](const auth::Principal& who) -> absl::Status {
        if (!request->has_consult()) {
          return absl::InvalidArgumentError("consult: required");
        }
        auto out = consults_.Request(who, request->consult());
        if (!out.ok()) return out.status();
        *response->mutable_consult() = std::move(out->value);
        response->set_duplicate(out->duplicate);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ConsultServiceImpl::GetConsult(grpc::CallbackServerContext* context,
                                                         const v1::GetConsultRequest* request,
                                                         v1::Consult* response) {
  return Answer(ctx_, context, "GetConsult", response, [this, request](const auto& who) {
    return consults_.Get(who, request->id(), request->include_thread());
  });
}

grpc::ServerUnaryReactor* ConsultServiceImpl::TransitionConsult(
    grpc::CallbackServerContext* context, const v1::TransitionConsultRequest* request,
    v1::TransitionConsultResponse* response) {
  return internal::ServeUnary(
      ctx_, context, "TransitionConsult",
      [this, request, response](const auth::Principal& who) -> absl::Status {
        auto out = consults_.Transition(who, *request);
        if (!out.ok()) return out.status();
        *response->mutable_consult() = std::move(out->value);
        response->set_duplicate(out->duplicate);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ConsultServiceImpl::IssueReport(grpc::CallbackServerContext* context,
                                                          const v1::IssueReportRequest* request,
                                                          v1::IssueReportResponse* response) {
  return internal::ServeUnary(
      ctx_, context, "IssueReport",
      [this, request, response](const auth::Principal& who) -> absl::Status {
        auto out = consults_.IssueReport(who, *request);
        if (!out.ok()) return out.status();
        *response->mutable_report() = std::move(out->value);
        response->set_duplicate(out->duplicate);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* ConsultServiceImpl::PostMessage(grpc::CallbackServerContext* context,
                                                          const v1::PostMessageRequest* request,
                                                          v1::PostMessageResponse* response) {
  return internal::ServeUnary(
      ctx_, context, "PostMessage",
      [this, request, response](const auth::Principal& who) -> absl::Status {
        auto out = consults_.Post(who, request->message());
        if (!out.ok()) return out.status();
        *response->mutable_message() = std::move(out->value);
        response->set_duplicate(out->duplicate);
        return absl::OkStatus();
      });
}

Reactor* ConsultServiceImpl::Session(grpc::CallbackServerContext* context) {
  return new SessionReactor(ctx_, consults_, sessions_, context);
}

grpc::ServerUnaryReactor* ConsultServiceImpl::ConvertToReferral(
    grpc::CallbackServerContext* context, const v1::ConvertToReferralRequest* request,
    v1::ConvertToReferralResponse* response) {
  return Answer(ctx_, context, "ConvertToReferral", response,
                [this, request](const auto& who) { return consults_.Convert(who, *request); });
}

grpc::ServerUnaryReactor* ConsultServiceImpl::ListConsults(grpc::CallbackServerContext* context,
                                                           const v1::ListConsultsRequest* request,
                                                           v1::ListConsultsResponse* response) {
  return Answer(ctx_, context, "ListConsults", response,
                [this, request](const auto& who) { return consults_.List(who, *request); });
}

}  // namespace refbroker::api

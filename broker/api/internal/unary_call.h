#pragma once
// ServeUnary: the shape of every unary RPC of the callback API here: authenticate the mTLS
// peer, run the blocking body on the engine's worker pool (never on a gRPC thread) inside an
// AuditScope, write the call's audit entries (with the state change they describe, or before
// the answer goes out), count the outcome, finish the reactor.

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "broker/api/service_context.h"
#include "broker/api/status_convert.h"
#include "broker/storage/audit_scope.h"

namespace refbroker::api::internal {

// Writes what `audit` still holds, with the call's outcome `s`, and returns the status to
// answer: `s`, or the audit error when a successful call's entries could not be recorded
// (nothing is disclosed unrecorded). A full disk does not stop reads: their entries wait in
// memory (AuditBacklog) until space returns.
inline absl::Status FinishAudit(ServiceContext& ctx, storage::AuditScope& audit, absl::Status s) {
  absl::Status recorded = audit.Finish(s.code());
  if (absl::IsResourceExhausted(recorded)) recorded = ctx.audit_backlog.Hold(audit.TakeUnwritten());
  if (s.ok() && !recorded.ok()) return recorded;
  return s;
}

// Runs `body(who)` (on the calling worker thread) inside an AuditScope made from `base`, writes
// its audit entries, counts and times the outcome as `method`; returns the status to answer.
template <typename Body>
absl::Status RunAudited(ServiceContext& ctx, const auth::Principal& who, storage::AuditRow base,
                        const char* method, std::chrono::steady_clock::time_point received,
                        Body&& body) {
  base.at = ctx.engine.clock().Now();
  storage::AuditScope audit(ctx.engine.store(), base);
  absl::Status s = FinishAudit(ctx, audit, body(who));
  ctx.metrics.CountRpc(method, s.code());
  ctx.metrics.ObserveRpc(
      method, s.code(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - received).count());
  return s;
}

// The audit entry of a call whose peer could not be authenticated: written, then counted.
inline void RecordUnauthenticated(ServiceContext& ctx, storage::AuditRow base, const char* method,
                                  const absl::Status& status) {
  base.at = ctx.engine.clock().Now();
  base.actor = "(unknown)";
  storage::AuditScope audit(ctx.engine.store(), base);
  audit.Finish(status.code()).IgnoreError();  // refused either way
  ctx.metrics.CountRpc(method, status.code());
}

// `body(const auth::Principal&) -> absl::Status` fills the response; it must stay valid until
// it runs (capture request/response pointers, which gRPC keeps alive until Finish).
template <typename Body>
grpc::ServerUnaryReactor* ServeUnary(ServiceContext& ctx, grpc::CallbackServerContext* context,
                                     const char* method, Body body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const auto received = std::chrono::steady_clock::now();
  auto principal = ctx.authenticator.Authenticate(context->auth_context().get());
  storage::AuditRow base;
  base.action = method;
  base.peer = context->peer();
  if (!principal.ok()) {
    // A client retrying with an unregistered or revoked certificate: audited up to a rate.
    if (!ctx.limiter.AuditRefusal(base.peer, ctx.engine.clock().Now())) {
      ctx.metrics.CountRpc(method, principal.status().code());
      reactor->Finish(ToGrpcStatus(principal.status()));
      return reactor;
    }
    ctx.engine.RunBlocking([&ctx, reactor, method, base, status = principal.status()]() {
      RecordUnauthenticated(ctx, base, method, status);
      reactor->Finish(ToGrpcStatus(status));
    });
    return reactor;
  }
  const auth::Principal* who = *principal;
  // A principal over its call rate is refused at once: no store work, no audit entry.
  if (absl::Status s = ctx.limiter.AdmitCall(*who, ctx.engine.clock().Now()); !s.ok()) {
    ctx.metrics.CountRpc(method, s.code());
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  base.actor = who->id;
  base.alliance = who->alliance;
  ctx.engine.RunBlocking([&ctx, reactor, who, method, body, base, received]() mutable {
    reactor->Finish(ToGrpcStatus(RunAudited(ctx, *who, base, method, received, body)));
  });
  return reactor;
}

// Serves a method whose workflow call returns StatusOr<Response>.
template <typename Call, typename Response>
grpc::ServerUnaryReactor* Answer(ServiceContext& ctx, grpc::CallbackServerContext* context,
                                 const char* method, Response* response, Call call) {
  return ServeUnary(ctx, context, method,
                    [response, call](const auth::Principal& who) -> absl::Status {
                      auto out = call(who);
                      if (!out.ok()) return out.status();
                      *response = std::move(*out);
                      return absl::OkStatus();
                    });
}

}  // namespace refbroker::api::internal

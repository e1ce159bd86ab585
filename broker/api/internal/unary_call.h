#pragma once
// ServeUnary: the shape of every unary RPC of the callback API here: authenticate the mTLS
// peer, run the blocking body on the engine's worker pool (never on a gRPC thread), count the
// outcome, finish the reactor.

#include <grpcpp/grpcpp.h>

#include "broker/api/service_context.h"
#include "broker/api/status_convert.h"

namespace refbroker::api::internal {

// `body(const auth::Principal&) -> absl::Status` fills the response; it must stay valid until
// it runs (capture request/response pointers, which gRPC keeps alive until Finish).
template <typename Body>
grpc::ServerUnaryReactor* ServeUnary(ServiceContext& ctx, grpc::CallbackServerContext* context,
                                     const char* method, Body body) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto principal = ctx.authenticator.Authenticate(context->auth_context().get());
  if (!principal.ok()) {
    ctx.metrics.CountRpc(method, principal.status().code());
    reactor->Finish(ToGrpcStatus(principal.status()));
    return reactor;
  }
  const auth::Principal* who = *principal;
  ctx.engine.RunBlocking([&ctx, reactor, who, method, body] {
    absl::Status s = body(*who);
    ctx.metrics.CountRpc(method, s.code());
    reactor->Finish(ToGrpcStatus(s));
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

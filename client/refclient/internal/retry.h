#pragma once
// WithRetries: one unary call, retried on transient failures with exponential backoff. Every
// refclient request carries a client_request_id where it changes state, so a retry never acts
// twice.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "client/refclient/connection.h"
#include "client/refclient/referral_client.h"

namespace refclient::internal {

template <typename Service, typename Call>
absl::Status WithRetries(Connection& connection, const RetryPolicy& retry, Call call) {
  auto backoff = retry.initial_backoff;
  absl::Status last;
  for (int attempt = 1; attempt <= retry.max_attempts; ++attempt) {
    auto stub = Service::NewStub(connection.channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + retry.per_call_timeout);
    ctx.set_wait_for_ready(true);
    last = FromGrpc(call(*stub, ctx));
    if (last.ok() || !IsRetryable(last) || attempt == retry.max_attempts) break;
    // An oversize request is RESOURCE_EXHAUSTED too, but retrying cannot help.
    if (absl::IsResourceExhausted(last) &&
        last.message().find("exceeds") != absl::string_view::npos) {
      break;
    }
    if (absl::IsUnavailable(last)) connection.Failover();
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, retry.max_backoff);
  }
  return last;
}

// One call returning its response: `call(stub, ctx, response)` -> grpc::Status.
template <typename Service, typename Response, typename Call>
absl::StatusOr<Response> CallWithRetries(Connection& connection, const RetryPolicy& retry,
                                         Call call) {
  Response response;
  absl::Status s = WithRetries<Service>(
      connection, retry, [&](auto& stub, auto& ctx) { return call(stub, ctx, response); });
  if (!s.ok()) return s;
  return response;
}

// The policy for reads: no retry (the caller decides).
inline RetryPolicy Once(RetryPolicy r) {
  r.max_attempts = 1;
  return r;
}

}  // namespace refclient::internal

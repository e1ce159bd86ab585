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
    auto channel = connection.channel();
    auto stub = Service::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + retry.per_call_timeout);
    // With one broker, a call waits (within its deadline) for the broker to come back; with
    // several it fails fast when its broker cannot be reached, and the next attempt goes to
    // another broker.
    ctx.set_wait_for_ready(!connection.has_alternatives());
    last = FromGrpc(call(*stub, ctx));
    if (last.ok() || !IsRetryable(last) || attempt == retry.max_attempts) break;
    // An oversize request is RESOURCE_EXHAUSTED too, but retrying cannot help.
    if (absl::IsResourceExhausted(last) &&
        last.message().find("exceeds") != absl::string_view::npos) {
      break;
    }
    // UNAVAILABLE, or the deadline passed while the channel was not connected (a broker
    // that does not answer at all): the broker is down for this client.
    if (absl::IsUnavailable(last) ||
        (absl::IsDeadlineExceeded(last) && channel->GetState(false) != GRPC_CHANNEL_READY)) {
      connection.Failover(channel);
    }
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

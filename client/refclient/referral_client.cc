#include "client/refclient/referral_client.h"

#include <thread>

namespace refclient {

bool IsRetryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s) ||
         absl::IsAborted(s);
}

namespace {

// Calls `call(stub, ctx)` until it succeeds, fails permanently or runs out of attempts.
template <typename Call>
absl::Status WithRetries(Connection& connection, const RetryPolicy& retry, Call call) {
  auto backoff = retry.initial_backoff;
  absl::Status last;
  for (int attempt = 1; attempt <= retry.max_attempts; ++attempt) {
    auto stub = refbroker::v1::ReferralService::NewStub(connection.channel());
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

}  // namespace

absl::StatusOr<refbroker::v1::SubmitReferralResponse> ReferralClient::Submit(
    const refbroker::v1::Referral& referral) {
  refbroker::v1::SubmitReferralRequest request;
  *request.mutable_referral() = referral;
  refbroker::v1::SubmitReferralResponse response;
  absl::Status s = WithRetries(connection_, retry_, [&](auto& stub, auto& ctx) {
    return stub.SubmitReferral(&ctx, request, &response);
  });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<refbroker::v1::TransitionReferralResponse> ReferralClient::Transition(
    const refbroker::v1::TransitionReferralRequest& request) {
  refbroker::v1::TransitionReferralResponse response;
  absl::Status s = WithRetries(connection_, retry_, [&](auto& stub, auto& ctx) {
    return stub.TransitionReferral(&ctx, request, &response);
  });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<refbroker::v1::Referral> ReferralClient::Get(const std::string& id) {
  refbroker::v1::GetReferralRequest request;
  request.set_id(id);
  refbroker::v1::Referral response;
  RetryPolicy once = retry_;
  once.max_attempts = 1;
  absl::Status s = WithRetries(connection_, once, [&](auto& stub, auto& ctx) {
    return stub.GetReferral(&ctx, request, &response);
  });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<refbroker::v1::ListReferralsResponse> ReferralClient::List(
    const refbroker::v1::ListReferralsRequest& request) {
  refbroker::v1::ListReferralsResponse response;
  RetryPolicy once = retry_;
  once.max_attempts = 1;
  absl::Status s = WithRetries(connection_, once, [&](auto& stub, auto& ctx) {
    return stub.ListReferrals(&ctx, request, &response);
  });
  if (!s.ok()) return s;
  return response;
}

}  // namespace refclient

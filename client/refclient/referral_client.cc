#include "client/refclient/referral_client.h"

#include <thread>

namespace refclient {

bool IsRetryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s) ||
         absl::IsAborted(s);
}

absl::StatusOr<refbroker::v1::SubmitReferralResponse> ReferralClient::Submit(
    const refbroker::v1::Referral& referral) {
  refbroker::v1::SubmitReferralRequest request;
  *request.mutable_referral() = referral;
  auto backoff = retry_.initial_backoff;
  absl::Status last;
  for (int attempt = 1; attempt <= retry_.max_attempts; ++attempt) {
    auto stub = refbroker::v1::ReferralService::NewStub(connection_.channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + retry_.per_call_timeout);
    ctx.set_wait_for_ready(true);
    refbroker::v1::SubmitReferralResponse response;
    last = FromGrpc(stub->SubmitReferral(&ctx, request, &response));
    if (last.ok()) return response;
    if (!IsRetryable(last) || attempt == retry_.max_attempts) break;
    // An oversize referral is RESOURCE_EXHAUSTED too, but retrying cannot help.
    if (absl::IsResourceExhausted(last) &&
        last.message().find("exceeds") != absl::string_view::npos) {
      break;
    }
    if (absl::IsUnavailable(last)) connection_.Failover();
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, retry_.max_backoff);
  }
  return last;
}

absl::StatusOr<refbroker::v1::Referral> ReferralClient::Get(const std::string& id) {
  auto stub = refbroker::v1::ReferralService::NewStub(connection_.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + retry_.per_call_timeout);
  refbroker::v1::GetReferralRequest request;
  request.set_id(id);
  refbroker::v1::Referral response;
  absl::Status s = FromGrpc(stub->GetReferral(&ctx, request, &response));
  if (!s.ok()) return s;
  return response;
}

}  // namespace refclient

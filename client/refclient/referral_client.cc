#include "client/refclient/referral_client.h"

#include <thread>

#include "client/refclient/internal/retry.h"

namespace refclient {

bool IsRetryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s) ||
         absl::IsAborted(s);
}

absl::StatusOr<refbroker::v1::SubmitReferralResponse> ReferralClient::Submit(
    const refbroker::v1::Referral& referral) {
  refbroker::v1::SubmitReferralRequest request;
  *request.mutable_referral() = referral;
  refbroker::v1::SubmitReferralResponse response;
  absl::Status s = internal::WithRetries<refbroker::v1::ReferralService>(
      connection_, retry_,
      [&](auto& stub, auto& ctx) { return stub.SubmitReferral(&ctx, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<refbroker::v1::TransitionReferralResponse> ReferralClient::Transition(
    const refbroker::v1::TransitionReferralRequest& request) {
  refbroker::v1::TransitionReferralResponse response;
  absl::Status s = internal::WithRetries<refbroker::v1::ReferralService>(
      connection_, retry_,
      [&](auto& stub, auto& ctx) { return stub.TransitionReferral(&ctx, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<refbroker::v1::Referral> ReferralClient::Get(const std::string& id) {
  refbroker::v1::GetReferralRequest request;
  request.set_id(id);
  refbroker::v1::Referral response;
  RetryPolicy once = retry_;
  once.max_attempts = 1;
  absl::Status s = internal::WithRetries<refbroker::v1::ReferralService>(
      connection_, once,
      [&](auto& stub, auto& ctx) { return stub.GetReferral(&ctx, request, &response); });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<refbroker::v1::ListReferralsResponse> ReferralClient::List(
    const refbroker::v1::ListReferralsRequest& request) {
  refbroker::v1::ListReferralsResponse response;
  RetryPolicy once = retry_;
  once.max_attempts = 1;
  absl::Status s = internal::WithRetries<refbroker::v1::ReferralService>(
      connection_, once,
      [&](auto& stub, auto& ctx) { return stub.ListReferrals(&ctx, request, &response); });
  if (!s.ok()) return s;
  return response;
}

}  // namespace refclient

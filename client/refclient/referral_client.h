#pragma once
// File: client/refclient/referral_client.h
//
// ReferralClient: submit and read referrals. Submit retries transient failures (UNAVAILABLE,
// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED from a full broker) with the same client_request_id,
// so a retry can never create a second referral: the broker returns the original.
//
// Example:
//
//   refbroker::v1::Referral r;
//   r.set_client_request_id("HIS-2026-000123");   // your own unique id for this referral
//   r.set_direction(refbroker::v1::UP);
//   ... patient, from, reason, diagnoses, consent ...
//   refclient::ReferralClient client(conn);
//   auto answer = client.Submit(r);
//   if (answer.ok()) store_broker_id(answer->referral().id());
//   else if (absl::IsInvalidArgument(answer.status())) fix(answer.status().message());

#include <chrono>

#include "absl/status/statusor.h"
#include "client/refclient/connection.h"
#include "refbroker/v1/referral.grpc.pb.h"

namespace refclient {

struct RetryPolicy {
  int max_attempts = 8;  ///< 1 = no retry
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{2000};
  std::chrono::milliseconds per_call_timeout{10000};
};

/// True for codes where the same request may be sent again.
bool IsRetryable(const absl::Status& status);

class ReferralClient {
 public:
  explicit ReferralClient(Connection& connection, RetryPolicy retry = RetryPolicy())
      : connection_(connection), retry_(retry) {}

  /// Submits `referral`; returns the stored referral once it is durable.
  /// @return INVALID_ARGUMENT naming the field, PERMISSION_DENIED, ALREADY_EXISTS (request id
  ///         reused for different content), or the last transient error after all retries.
  absl::StatusOr<refbroker::v1::SubmitReferralResponse> Submit(
      const refbroker::v1::Referral& referral);

  /// Reads one referral with its history (sender, receiver or alliance operator only).
  absl::StatusOr<refbroker::v1::Referral> Get(const std::string& id);

  /// Accepts, declines, records arrival, completes or cancels. Retries transient failures with
  /// the same client_request_id, so the action happens once.
  /// @return FAILED_PRECONDITION when the referral's state does not allow it, PERMISSION_DENIED
  ///         when the caller is not the party that may do it.
  absl::StatusOr<refbroker::v1::TransitionReferralResponse> Transition(
      const refbroker::v1::TransitionReferralRequest& request);

  /// One page of the referrals the caller may see, newest first.
  absl::StatusOr<refbroker::v1::ListReferralsResponse> List(
      const refbroker::v1::ListReferralsRequest& request);

 private:
  Connection& connection_;
  RetryPolicy retry_;
};

}  // namespace refclient

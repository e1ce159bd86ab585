#pragma once
// The referral state machine (双向转诊), as one table. Pure functions, thread-safe.
//
//   action    by        from                                   to
//   DELIVER   broker    SUBMITTED                              DELIVERED
//   ACCEPT    receiver  SUBMITTED DELIVERED ESCALATED          ACCEPTED
//   DECLINE   receiver  SUBMITTED DELIVERED ESCALATED          DECLINED
//   ARRIVE    receiver  ACCEPTED                               ARRIVED
//   COMPLETE  receiver  ARRIVED                                COMPLETED
//   CANCEL    sender    SUBMITTED DELIVERED ESCALATED ACCEPTED CANCELLED
//   ESCALATE  broker    SUBMITTED DELIVERED                    ESCALATED

#include <vector>

#include "absl/status/statusor.h"
#include "refbroker/v1/referral.pb.h"

namespace refbroker::domain {

// How the actor relates to the referral.
enum class Party { kSender, kReceiver, kBroker, kOther };

struct TransitionRule {
  refbroker::v1::ReferralAction action;
  Party party;
  std::vector<refbroker::v1::ReferralState> from;
  refbroker::v1::ReferralState to;
};

const std::vector<TransitionRule>& ReferralTransitionRules();

// The state after `party` does `action` on a referral in state `from`: PERMISSION_DENIED when
// the party may never do it, FAILED_PRECONDITION when the state does not allow it. Messages
// name the field "action".
absl::StatusOr<refbroker::v1::ReferralState> NextReferralState(refbroker::v1::ReferralState from,
                                                               refbroker::v1::ReferralAction action,
                                                               Party party);

// True while the receiver's decision is awaited (a decision deadline runs).
bool DecisionPending(refbroker::v1::ReferralState state);

const char* PartyName(Party party);

}  // namespace refbroker::domain

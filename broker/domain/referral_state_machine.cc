#include "broker/domain/referral_state_machine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace refbroker::domain {

using refbroker::v1::ReferralAction;
using refbroker::v1::ReferralState;
namespace v1 = refbroker::v1;

const std::vector<TransitionRule>& ReferralTransitionRules() {
  static const std::vector<TransitionRule> kRules = {
      {v1::DELIVER, Party::kBroker, {v1::SUBMITTED}, v1::DELIVERED},
      {v1::ACCEPT, Party::kReceiver, {v1::SUBMITTED, v1::DELIVERED, v1::ESCALATED}, v1::ACCEPTED},
      {v1::DECLINE, Party::kReceiver, {v1::SUBMITTED, v1::DELIVERED, v1::ESCALATED}, v1::DECLINED},
      {v1::ARRIVE, Party::kReceiver, {v1::ACCEPTED}, v1::ARRIVED},
      {v1::COMPLETE, Party::kReceiver, {v1::ARRIVED}, v1::COMPLETED},
      {v1::CANCEL,
       Party::kSender,
       {v1::SUBMITTED, v1::DELIVERED, v1::ESCALATED, v1::ACCEPTED},
       v1::CANCELLED},
      {v1::ESCALATE, Party::kBroker, {v1::SUBMITTED, v1::DELIVERED}, v1::ESCALATED},
  };
  return kRules;
}

const char* PartyName(Party party) {
  switch (party) {
    case Party::kSender:
      return "the sender";
    case Party::kReceiver:
      return "the receiver";
    case Party::kBroker:
      return "the broker";
    case Party::kOther:
      return "another institution";
  }
  return "?";
}

absl::StatusOr<ReferralState> NextReferralState(ReferralState from, ReferralAction action,
                                                Party party) {
  for (const TransitionRule& rule : ReferralTransitionRules()) {
    if (rule.action != action) continue;
    if (rule.party != party) {
      return absl::PermissionDeniedError(absl::StrCat("action: only ", PartyName(rule.party),
                                                      " may ", v1::ReferralAction_Name(action),
                                                      " a referral"));
    }
    if (std::find(rule.from.begin(), rule.from.end(), from) == rule.from.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("action: cannot ", v1::ReferralAction_Name(action), " a referral that is ",
                       v1::ReferralState_Name(from)));
    }
    return rule.to;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("action: ", v1::ReferralAction_Name(action), " is not a transition"));
}

bool DecisionPending(ReferralState state) {
  return state == v1::SUBMITTED || state == v1::DELIVERED;
}

}  // namespace refbroker::domain

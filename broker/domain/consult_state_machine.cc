#include "broker/domain/consult_state_machine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace refbroker::domain {

namespace v1 = refbroker::v1;
using v1::ConsultAction;
using v1::ConsultState;

const std::vector<ConsultTransitionRule>& ConsultTransitionRules() {
  static const std::vector<ConsultTransitionRule> kRules = {
      {v1::CONSULT_ACCEPT, Party::kReceiver, {v1::CONSULT_REQUESTED}, v1::CONSULT_ACCEPTED},
      {v1::CONSULT_DECLINE, Party::kReceiver, {v1::CONSULT_REQUESTED}, v1::CONSULT_DECLINED},
      {v1::CONSULT_SCHEDULE,
       Party::kReceiver,
       {v1::CONSULT_ACCEPTED, v1::CONSULT_SCHEDULED},
       v1::CONSULT_SCHEDULED},
      {v1::CONSULT_REPORT,
       Party::kReceiver,
       {v1::CONSULT_ACCEPTED, v1::CONSULT_SCHEDULED},
       v1::CONSULT_REPORTED},
      {v1::CONSULT_ADDENDUM,
       Party::kReceiver,
       {v1::CONSULT_REPORTED},
       v1::CONSULT_STATE_UNSPECIFIED},
      {v1::CONSULT_CANCEL,
       Party::kSender,
       {v1::CONSULT_REQUESTED, v1::CONSULT_ACCEPTED, v1::CONSULT_SCHEDULED},
       v1::CONSULT_CANCELLED},
      {v1::CONSULT_ESCALATE,
       Party::kBroker,
       {v1::CONSULT_REQUESTED, v1::CONSULT_ACCEPTED, v1::CONSULT_SCHEDULED},
       v1::CONSULT_STATE_UNSPECIFIED},
      {v1::CONSULT_CONVERT,
       Party::kSender,
       {v1::CONSULT_REQUESTED, v1::CONSULT_ACCEPTED, v1::CONSULT_SCHEDULED, v1::CONSULT_REPORTED,
        v1::CONSULT_DECLINED},
       v1::CONSULT_STATE_UNSPECIFIED},
  };
  return kRules;
}

const char* ConsultPartyName(Party party) {
  switch (party) {
    case Party::kSender:
      return "the requester";
    case Party::kReceiver:
      return "the consulted institution";
    case Party::kBroker:
      return "the broker";
    case Party::kOther:
      return "another institution";
  }
  return "?";
}

absl::StatusOr<ConsultState> NextConsultState(ConsultState from, ConsultAction action,
                                              Party party) {
  for (const ConsultTransitionRule& rule : ConsultTransitionRules()) {
    if (rule.action != action) continue;
    if (rule.party != party) {
      return absl::PermissionDeniedError(absl::StrCat("action: only ", ConsultPartyName(rule.party),
                                                      " may ", v1::ConsultAction_Name(action),
                                                      " a consult"));
    }
    if (std::find(rule.from.begin(), rule.from.end(), from) == rule.from.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("action: cannot ", v1::ConsultAction_Name(action), " a consult that is ",
                       v1::ConsultState_Name(from)));
    }
    return rule.to == v1::CONSULT_STATE_UNSPECIFIED ? from : rule.to;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("action: ", v1::ConsultAction_Name(action), " is not a transition"));
}

bool AcceptancePending(ConsultState state) { return state == v1::CONSULT_REQUESTED; }

bool ReportPending(ConsultState state) {
  return state == v1::CONSULT_ACCEPTED || state == v1::CONSULT_SCHEDULED;
}

bool ThreadOpen(ConsultState state) {
  return state != v1::CONSULT_CANCELLED && state != v1::CONSULT_STATE_UNSPECIFIED;
}

}  // namespace refbroker::domain

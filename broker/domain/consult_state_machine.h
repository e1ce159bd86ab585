#pragma once
// The consult state machine (远程会诊), as one table. Pure functions, thread-safe.
//
//   action            by         from                                            to
//   CONSULT_ACCEPT    target     REQUESTED                                       ACCEPTED
//   CONSULT_DECLINE   target     REQUESTED                                       DECLINED
//   CONSULT_SCHEDULE  target     ACCEPTED SCHEDULED                              SCHEDULED
//   CONSULT_REPORT    target     ACCEPTED SCHEDULED                              REPORTED
//   CONSULT_ADDENDUM  target     REPORTED                                        (unchanged)
//   CONSULT_CANCEL    requester  REQUESTED ACCEPTED SCHEDULED                    CANCELLED
//   CONSULT_ESCALATE  broker     REQUESTED ACCEPTED SCHEDULED                    (unchanged)
//   CONSULT_CONVERT   requester  REQUESTED ACCEPTED SCHEDULED REPORTED DECLINED  (unchanged)
//
// The requester is Party::kSender, the target Party::kReceiver. A thread message may be posted
// by either party in any state but CANCELLED (ThreadOpen).

#include <vector>

#include "absl/status/statusor.h"
#include "broker/domain/referral_state_machine.h"
#include "refbroker/v1/consult.pb.h"

namespace refbroker::domain {

struct ConsultTransitionRule {
  refbroker::v1::ConsultAction action;
  Party party;
  std::vector<refbroker::v1::ConsultState> from;
  refbroker::v1::ConsultState to;  // CONSULT_STATE_UNSPECIFIED: the state does not change
};

const std::vector<ConsultTransitionRule>& ConsultTransitionRules();

// The state after `party` does `action` on a consult in state `from`: PERMISSION_DENIED when
// the party may never do it, FAILED_PRECONDITION when the state does not allow it. Messages
// name the field "action".
absl::StatusOr<refbroker::v1::ConsultState> NextConsultState(refbroker::v1::ConsultState from,
                                                             refbroker::v1::ConsultAction action,
                                                             Party party);

// True while the target's acceptance is awaited, or its report (a deadline runs).
bool AcceptancePending(refbroker::v1::ConsultState state);
bool ReportPending(refbroker::v1::ConsultState state);
// Either side may still add to the thread.
bool ThreadOpen(refbroker::v1::ConsultState state);

const char* ConsultPartyName(Party party);

}  // namespace refbroker::domain

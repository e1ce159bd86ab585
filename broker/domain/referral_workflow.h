#pragma once
// ReferralWorkflow: the two-way referral (双向转诊) as the broker runs it.
//
// - Submit: validates, checks the caller acts as itself, routes (UP: to the named or default
//   county receiver; DOWN: back to the township of the UP leg it continues), sets the decision
//   deadline, and stores the referral, its SUBMIT event and its delivery in one transaction.
// - Transition: a party's action (accept, decline, arrive, complete, cancel), checked against
//   the state machine (referral_state_machine.h), applied with optimistic concurrency, recorded
//   in the history and announced to the other party's REFERRAL_UPDATES queue.
// - MarkDelivered / EscalateDue: the broker's own actions (the receiver's system acked the
//   delivery; the decision deadline passed, with optional re-routing to an alternate hospital).
// - Get / List: what the caller may see.
//
// Thread-safe; every method blocks on the store.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/auth/access_policy.h"
#include "broker/auth/registry.h"
#include "broker/common/clock.h"
#include "broker/domain/referral_state_machine.h"
#include "broker/domain/referral_validator.h"
#include "broker/routing/referral_router.h"
#include "broker/storage/store.h"
#include "refbroker/v1/referral.pb.h"

namespace refbroker::domain {

// Where an escalated referral goes instead: from a receiver (optionally for one specialty)
// to an alternate hospital of the alliance.
struct RerouteRule {
  std::string from;
  std::string specialty;  // "" = any
  std::string to;
};

struct WorkflowOptions {
  // Decision deadlines by priority (EMERGENCY, URGENT, ROUTINE), in seconds.
  int64_t emergency_deadline_s = 10 * 60;
  int64_t urgent_deadline_s = 2 * 3600;
  int64_t routine_deadline_s = 48 * 3600;
  std::vector<RerouteRule> reroutes;
  ReferralLimits limits;
};

struct SubmitOutcome {
  refbroker::v1::Referral referral;  // as stored
  bool duplicate = false;
};

struct TransitionOutcome {
  refbroker::v1::Referral referral;  // after the transition, with history
  bool duplicate = false;
};

class ReferralWorkflow {
 public:
  struct Hooks {
    std::function<void(const std::string& queue)> notify;  // messages were enqueued
    std::function<void(Micros due)> deadline_set;          // a decision deadline was stored
    // Mutual-recognition verdicts of the referral's attached results for a receiver.
    std::function<absl::StatusOr<std::vector<refbroker::v1::RecognitionVerdict>>(
        const refbroker::v1::Referral&, const std::string& receiver)>
        stamp_results;
  };

  ReferralWorkflow(storage::Store& store, const auth::AccessPolicy& policy,
                   const routing::ReferralRouter& router, const Clock& clock,
                   WorkflowOptions options, Hooks hooks);

  // `from_consult`: the consult a conversion turns into this referral (ConsultWorkflow).
  absl::StatusOr<SubmitOutcome> Submit(const auth::Principal& caller,
                                       const refbroker::v1::Referral& submitted,
                                       const std::string& from_consult = "");
  absl::StatusOr<TransitionOutcome> Transition(
      const auth::Principal& caller, const refbroker::v1::TransitionReferralRequest& request);
  // The receiver `owner`'s system acked the delivery of `referral_id`.
  absl::Status MarkDelivered(const std::string& referral_id, const std::string& owner);
  // The same DELIVERED transition, for a store to apply in the ack's own transaction: computed
  // from `rec` as that transaction read it; nullopt when it does not apply (accepted,
  // re-routed or delivered before). Touches no store.
  std::optional<storage::ReferralChange> DeliveredChange(const storage::ReferralRecord& rec,
                                                         const std::string& owner);
  // After a store committed `change` (with an ack): announces its messages and logs it.
  void Recorded(const storage::ReferralChange& change);
  // Escalates every referral whose decision deadline passed; returns how many.
  absl::StatusOr<size_t> EscalateDue();

  absl::StatusOr<refbroker::v1::Referral> Get(const auth::Principal& caller, const std::string& id);
  absl::StatusOr<refbroker::v1::ListReferralsResponse> List(
      const auth::Principal& caller, const refbroker::v1::ListReferralsRequest& request);

  Micros DeadlineFor(refbroker::v1::Priority priority, Micros from) const;

 private:
  struct Change;  // one attempted transition, see .cc
  // What a transition writes: the store's change and the record after it.
  struct Prepared {
    storage::ReferralChange change;
    storage::ReferralRecord after;
  };
  // Checks and computes `change` on `rec` (FAILED_PRECONDITION when it does not apply).
  absl::StatusOr<Prepared> Prepare(const Change& change, const storage::ReferralRecord& rec,
                                   Micros now);
  absl::StatusOr<storage::ChangeResult> Apply(Change& change);
  absl::StatusOr<SubmitOutcome> SubmitDown(const auth::Principal& caller,
                                           refbroker::v1::Referral r);
  // Stores a new, routed referral with its SUBMIT event, its delivery and its deadline.
  absl::StatusOr<SubmitOutcome> StoreNew(const auth::Principal& caller, refbroker::v1::Referral r,
                                         const std::string& digest, Micros now);
  absl::StatusOr<refbroker::v1::Referral> Load(const storage::ReferralRecord& record,
                                               bool with_history);
  const RerouteRule* FindReroute(const std::string& from, const std::string& specialty) const;
  void Announce(const std::vector<storage::NewMessage>& messages);

  storage::Store& store_;
  const auth::AccessPolicy& policy_;
  const routing::ReferralRouter& router_;
  const Clock& clock_;
  const WorkflowOptions options_;
  Hooks hooks_;
};

}  // namespace refbroker::domain

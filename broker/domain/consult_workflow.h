#pragma once
// ConsultWorkflow: teleconsultation and remote reading (远程会诊, 基层检查、上级诊断).
//
// - Request: validates (consult_validator.h), checks that the target offers the service, stamps
//   the recognition verdicts of the attached results for the target, sets the acceptance
//   deadline, and stores the consult, its REQUEST event and its worklist message (the target's
//   CONSULTS queue) in one transaction.
// - Transition: accept, decline, schedule (target); cancel (requester); checked against the
//   state machine (consult_state_machine.h), applied with optimistic concurrency, recorded in
//   the history and delivered to the other party's CONSULT_UPDATES queue. Accepting starts the
//   report deadline of the service.
// - IssueReport: the target's signed report (SHA-256 of its content, signer), immutable once
//   stored; a later one must be an addendum naming an earlier report. A reading report's data is
//   also published as a result record of the patient (ResultWorkflow), so it takes part in
//   mutual recognition; its conclusion (the opinion) never does.
// - Post: a thread message, numbered in the consult's order and delivered to the other party.
// - Convert: turns the consult into an UP referral (ReferralWorkflow) carrying its patient,
//   consent, attachments and reading results, linked both ways.
// - EscalateDue: the broker's action when an acceptance or report deadline passed: both parties
//   and the alliance operator are told; the state does not change.
//
// Thread-safe; every method blocks on the store.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/auth/access_policy.h"
#include "broker/auth/registry.h"
#include "broker/common/clock.h"
#include "broker/domain/consult_state_machine.h"
#include "broker/storage/store.h"
#include "refbroker/v1/consult.pb.h"

namespace refbroker::domain {

// Seconds allowed per priority.
struct PriorityDeadlines {
  int64_t emergency_s = 0;
  int64_t urgent_s = 0;
  int64_t routine_s = 0;
  int64_t For(refbroker::v1::Priority p) const;
};

struct ConsultOptions {
  // Acceptance: EMERGENCY within 10 minutes (telemedicine rules), routine within 24 hours.
  PriorityDeadlines accept{10 * 60, 2 * 3600, 24 * 3600};
  // Report, from acceptance: a default, and per service (ConsultServiceType value).
  PriorityDeadlines report{2 * 3600, 24 * 3600, 24 * 3600};
  std::map<int, PriorityDeadlines> report_by_service{
      {refbroker::v1::ECG_READING, {30 * 60, 24 * 3600, 24 * 3600}},
      {refbroker::v1::IMAGING_READING, {60 * 60, 24 * 3600, 48 * 3600}},
  };
  size_t max_consult_bytes = 256 * 1024;
};

template <typename T>
struct Stored {
  T value;
  bool duplicate = false;
};

class ConsultWorkflow {
 public:
  struct Hooks {
    std::function<void(const std::string& queue)> notify;  // messages were enqueued
    std::function<void(Micros due)> deadline_set;          // a deadline was stored
    // Verdicts of a patient's results for a receiver; INVALID_ARGUMENT "<field>[i]: ...".
    std::function<absl::StatusOr<std::vector<refbroker::v1::RecognitionVerdict>>(
        const refbroker::v1::Patient&, const google::protobuf::RepeatedPtrField<std::string>&,
        const std::string& receiver, const std::string& field)>
        stamp_results;
    // Publishes a reading's result record as `publisher`; returns it as stored.
    std::function<absl::StatusOr<refbroker::v1::ResultRecord>(const auth::Principal& publisher,
                                                              const refbroker::v1::ResultRecord&)>
        publish_reading;
    // Submits a referral as `sender`; returns it as stored.
    std::function<absl::StatusOr<refbroker::v1::Referral>(const auth::Principal& sender,
                                                          const refbroker::v1::Referral&)>
        submit_referral;
    // A thread message was stored (live sessions forward it).
    std::function<void(const refbroker::v1::ConsultMessage&)> message_stored;
  };

  ConsultWorkflow(storage::Store& store, const auth::Registry& registry,
                  const auth::AccessPolicy& policy, const Clock& clock, ConsultOptions options,
                  Hooks hooks);

  absl::StatusOr<Stored<refbroker::v1::Consult>> Request(const auth::Principal& caller,
                                                         const refbroker::v1::Consult& submitted);
  absl::StatusOr<Stored<refbroker::v1::Consult>> Transition(
      const auth::Principal& caller, const refbroker::v1::TransitionConsultRequest& request);
  absl::StatusOr<Stored<refbroker::v1::ConsultReport>> IssueReport(
      const auth::Principal& caller, const refbroker::v1::IssueReportRequest& request);
  absl::StatusOr<Stored<refbroker::v1::ConsultMessage>> Post(
      const auth::Principal& caller, const refbroker::v1::ConsultMessage& message);
  absl::StatusOr<refbroker::v1::ConvertToReferralResponse> Convert(
      const auth::Principal& caller, const refbroker::v1::ConvertToReferralRequest& request);
  // Escalates every consult whose deadline passed; returns how many.
  absl::StatusOr<size_t> EscalateDue();

  absl::StatusOr<refbroker::v1::Consult> Get(const auth::Principal& caller, const std::string& id,
                                             bool include_thread);
  absl::StatusOr<refbroker::v1::ListConsultsResponse> List(
      const auth::Principal& caller, const refbroker::v1::ListConsultsRequest& request);
  // The consult `id` if the caller is one of its parties (live sessions): its requester and
  // target. PERMISSION_DENIED for anyone else, NOT_FOUND for an unknown id.
  absl::StatusOr<storage::ConsultRecord> PartyRecord(const auth::Principal& caller,
                                                     const std::string& id);

  Micros AcceptDeadline(refbroker::v1::Priority priority, Micros from) const;
  Micros ReportDeadline(refbroker::v1::ConsultServiceType service, refbroker::v1::Priority priority,
                        Micros from) const;

 private:
  struct Change;  // one attempted transition, see .cc
  absl::StatusOr<storage::ConsultChangeResult> Apply(Change& change);
  absl::StatusOr<refbroker::v1::Consult> Load(const storage::ConsultRecord& record,
                                              bool with_history, bool with_thread);
  absl::StatusOr<refbroker::v1::ConsultReport> FindReport(const std::string& consult_id,
                                                          const std::string& report_id);
  absl::Status CheckTarget(const auth::Principal& caller, const refbroker::v1::ConsultTarget& t);
  void Announce(const std::vector<storage::NewMessage>& messages);

  storage::Store& store_;
  const auth::Registry& registry_;
  const auth::AccessPolicy& policy_;
  const Clock& clock_;
  const ConsultOptions options_;
  Hooks hooks_;
};

}  // namespace refbroker::domain

#include "broker/domain/referral_workflow.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "broker/common/ids.h"
#include "broker/common/queue_name.h"
#include "broker/common/status_macros.h"
#include "broker/domain/identifiers.h"
#include "broker/domain/patient_key.h"
#include "broker/storage/audit_scope.h"
#include "google/protobuf/util/time_util.h"
#include "refbroker/v1/delivery.pb.h"

namespace refbroker::domain {
namespace {

namespace v1 = refbroker::v1;
using google::protobuf::util::TimeUtil;
using v1::Referral;

constexpr int kMaxRetries = 8;  // optimistic-concurrency retries of one transition

Party PartyOf(const std::string& institution, const storage::ReferralRecord& r) {
  if (institution.empty()) return Party::kBroker;
  if (institution == r.sender) return Party::kSender;
  if (institution == r.receiver) return Party::kReceiver;
  return Party::kOther;
}

storage::NewMessage Message(const QueueName& queue, int priority, const std::string& subject,
                            const v1::Delivery& payload) {
  return storage::NewMessage{queue.ToString(), priority, subject, payload.SerializeAsString()};
}

storage::NewMessage UpdateFor(const std::string& owner, const storage::ReferralRecord& after,
                              const v1::ReferralEvent& event, v1::QueueKind kind) {
  v1::Delivery d;
  v1::ReferralUpdate* u = d.mutable_referral_update();
  u->set_referral_id(after.id);
  u->set_journey_id(after.journey_id);
  u->set_direction(static_cast<v1::Direction>(after.direction));
  u->set_priority(static_cast<v1::Priority>(after.priority));
  u->set_sender(after.sender);
  u->set_receiver(after.receiver);
  u->set_state(static_cast<v1::ReferralState>(after.state));
  *u->mutable_event() = event;
  return Message(QueueName{owner, kind}, after.priority, after.id, d);
}

v1::Actor BrokerActor() {
  v1::Actor a;
  a.mutable_doctor()->set_id("refbroker");
  a.mutable_doctor()->set_name("refbroker");
  return a;
}

absl::Status Invalid(const std::string& field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status CheckText(const std::string& value, const char* field, size_t max, bool required) {
  if (required && value.empty()) return Invalid(field, "required");
  if (value.size() > max) return Invalid(field, absl::StrCat("longer than ", max, " bytes"));
  return absl::OkStatus();
}

absl::Status ValidateTransition(const v1::TransitionReferralRequest& r) {
  RETURN_IF_ERROR(CheckText(r.referral_id(), "referral_id", 64, true));
  RETURN_IF_ERROR(CheckText(r.client_request_id(), "client_request_id", 128, true));
  if (!r.has_doctor()) return Invalid("doctor", "required");
  RETURN_IF_ERROR(CheckText(r.doctor().id(), "doctor.id", 128, true));
  RETURN_IF_ERROR(CheckText(r.doctor().name(), "doctor.name", 128, true));
  switch (r.action_case()) {
    case v1::TransitionReferralRequest::kAccept:
      return CheckText(r.accept().note(), "accept.note", 2000, false);
    case v1::TransitionReferralRequest::kArrive:
      return CheckText(r.arrive().note(), "arrive.note", 2000, false);
    case v1::TransitionReferralRequest::kDecline:
      if (r.decline().reason() == v1::DECLINE_REASON_UNSPECIFIED ||
          !v1::DeclineReason_IsValid(r.decline().reason())) {
        return Invalid("decline.reason", "required (a coded reason)");
      }
      return CheckText(r.decline().text(), "decline.text", 2000,
                       r.decline().reason() == v1::DECLINE_OTHER);
    case v1::TransitionReferralRequest::kComplete:
      return CheckText(r.complete().outcome_summary(), "complete.outcome_summary", 16 * 1024, true);
    case v1::TransitionReferralRequest::kCancel:
      return CheckText(r.cancel().reason(), "cancel.reason", 2000, true);
    default:
      return Invalid("action", "one of accept, decline, arrive, complete, cancel is required");
  }
}

v1::ReferralAction ActionOf(const v1::TransitionReferralRequest& r) {
  switch (r.action_case()) {
    case v1::TransitionReferralRequest::kAccept:
      return v1::ACCEPT;
    case v1::TransitionReferralRequest::kDecline:
      return v1::DECLINE;
    case v1::TransitionReferralRequest::kArrive:
      return v1::ARRIVE;
    case v1::TransitionReferralRequest::kComplete:
      return v1::COMPLETE;
    case v1::TransitionReferralRequest::kCancel:
      return v1::CANCEL;
    default:
      return v1::REFERRAL_ACTION_UNSPECIFIED;
  }
}

void FillEvent(const v1::TransitionReferralRequest& r, v1::ReferralEvent& e) {
  switch (r.action_case()) {
    case v1::TransitionReferralRequest::kAccept:
      e.set_text(r.accept().note());
      break;
    case v1::TransitionReferralRequest::kArrive:
      e.set_text(r.arrive().note());
      break;
    case v1::TransitionReferralRequest::kDecline:
      e.set_decline_reason(r.decline().reason());
      e.set_text(r.decline().text());
      break;
    case v1::TransitionReferralRequest::kComplete:
      e.set_outcome_summary(r.complete().outcome_summary());
      break;
    case v1::TransitionReferralRequest::kCancel:
      e.set_text(r.cancel().reason());
      break;
    default:
      break;
  }
}

bool SamePatient(const v1::Patient& a, const v1::Patient& b) {
  for (const auto& x : a.identifiers()) {
    for (const auto& y : b.identifiers()) {
      if (x.type() == y.type() && x.value() == y.value()) return true;
    }
  }
  return false;
}

}  // namespace

// One attempted transition: the input, and what it produced.
struct ReferralWorkflow::Change {
  std::string referral_id;
  v1::ReferralAction action = v1::REFERRAL_ACTION_UNSPECIFIED;
  v1::Actor actor;
  std::string client_request_id;
  std::function<void(v1::ReferralEvent&)> fill;
  std::string expected_receiver;  // act only while this is still the receiver
  // Act only while the decision deadline is still this one: an escalation happens once even
  // when several brokers on one database see the deadline pass (the others find it changed).
  Micros only_while_due_at = 0;
  // Name the referral in the calling thread's audit scope. Not for a change computed inside a
  // store's transaction: that runs on whichever thread commits, in nobody's request.
  bool touch_audit_scope = true;
  storage::ReferralRecord after;  // output
};

ReferralWorkflow::ReferralWorkflow(storage::Store& store, const auth::AccessPolicy& policy,
                                   const routing::ReferralRouter& router, const Clock& clock,
                                   WorkflowOptions options, Hooks hooks)
    : store_(store),
      policy_(policy),
      router_(router),
      clock_(clock),
      options_(std::move(options)),
      hooks_(std::move(hooks)) {}

Micros ReferralWorkflow::DeadlineFor(v1::Priority priority, Micros from) const {
  int64_t s = priority == v1::EMERGENCY ? options_.emergency_deadline_s
              : priority == v1::URGENT  ? options_.urgent_deadline_s
                                        : options_.routine_deadline_s;
  return from + s * 1000000;
}

const RerouteRule* ReferralWorkflow::FindReroute(const std::string& from,
                                                 const std::string& specialty) const {
  const RerouteRule* any = nullptr;
  for (const RerouteRule& r : options_.reroutes) {
    if (r.from != from || r.to == from) continue;
    if (!r.specialty.empty() && r.specialty == specialty) return &r;
    if (r.specialty.empty() && any == nullptr) any = &r;
  }
  return any;
}

void ReferralWorkflow::Announce(const std::vector<storage::NewMessage>& messages) {
  if (!hooks_.notify) return;
  for (const auto& m : messages) hooks_.notify(m.queue);
}

absl::StatusOr<SubmitOutcome> ReferralWorkflow::Submit(const auth::Principal& caller,
                                                       const Referral& submitted,
                                                       const std::string& from_consult) {
  Micros now = clock_.Now();
  RETURN_IF_ERROR(ValidateReferralSubmission(submitted, now, options_.limits));
  if (!caller.IsInstitution() || submitted.from().institution() != caller.id) {
    return absl::PermissionDeniedError(absl::StrCat("referral.from.institution: the caller ",
                                                    caller.id, " may only submit as itself"));
  }
  Referral r = submitted;
  r.clear_id();
  r.clear_state();
  r.clear_submitted_at();
  r.clear_updated_at();
  r.clear_journey_id();
  r.clear_decision_deadline();
  r.clear_history();
  r.clear_attached_result_verdicts();
  r.set_converted_from_consult_id(from_consult);
  if (r.direction() == v1::DOWN) return SubmitDown(caller, std::move(r));
  if (caller.role != auth::Role::kClinic) {
    return absl::PermissionDeniedError(absl::StrCat(
        "referral.direction: only a township clinic sends an UP referral (caller is a ",
        auth::RoleName(caller.role), ")"));
  }
  ASSIGN_OR_RETURN(const auth::Principal* receiver, router_.RouteUp(caller, r.to_institution()));
  r.set_to_institution(receiver->id);
  r.set_journey_id("");  // set below, after the digest of what the sender sent
  std::string digest = MessageDigest(r);
  r.set_journey_id(NewId("jny", now));
  return StoreNew(caller, std::move(r), digest, now);
}

absl::StatusOr<SubmitOutcome> ReferralWorkflow::SubmitDown(const auth::Principal& caller,
                                                           Referral r) {
  constexpr char kField[] = "referral.continues_referral_id";
  Micros now = clock_.Now();
  auto up = store_.GetReferral(r.continues_referral_id());
  if (absl::IsNotFound(up.status())) {
    return absl::NotFoundError(
        absl::StrCat(kField, ": no referral '", r.continues_referral_id(), "'"));
  }
  if (!up.ok()) return up.status();
  if (up->direction != v1::UP) {
    return Invalid(kField, "a DOWN referral continues an UP referral");
  }
  if (up->receiver != caller.id) {
    return absl::PermissionDeniedError(
        absl::StrCat(kField, ": only the institution that received the UP referral continues it"));
  }
  if (up->state != v1::COMPLETED) {
    return absl::FailedPreconditionError(
        absl::StrCat(kField, ": the UP referral is ",
                     v1::ReferralState_Name(static_cast<v1::ReferralState>(up->state)),
                     "; only a COMPLETED one is continued"));
  }
  storage::ReferralQuery legs;
  legs.journey_id = up->journey_id;
  legs.direction = v1::DOWN;
  legs.limit = 1;
  ASSIGN_OR_RETURN(auto downs, store_.ListReferrals(legs));
  if (!downs.empty() &&
      !(downs[0].sender == caller.id && downs[0].client_request_id == r.client_request_id())) {
    return absl::FailedPreconditionError(
        absl::StrCat(kField, ": the journey already continues with ", downs[0].id));
  }
  Referral up_body;
  if (!up_body.ParseFromString(up->body)) return absl::DataLossError("stored referral is damaged");
  if (!SamePatient(up_body.patient(), r.patient())) {
    return Invalid("referral.patient", "is not the patient of the UP referral it continues");
  }
  std::string to = r.to_institution().empty() ? up->sender : r.to_institution();
  ASSIGN_OR_RETURN(const auth::Principal* receiver, router_.RouteDown(caller, to));
  r.set_to_institution(receiver->id);
  std::string digest = MessageDigest(r);
  r.set_journey_id(up->journey_id);
  return StoreNew(caller, std::move(r), digest, now);
}

absl::StatusOr<SubmitOutcome> ReferralWorkflow::StoreNew(const auth::Principal& caller, Referral r,
                                                         const std::string& digest, Micros now) {
  Micros due = DeadlineFor(r.priority(), now);
  if (r.attached_result_ids_size() > 0 && hooks_.stamp_results) {
    ASSIGN_OR_RETURN(auto verdicts, hooks_.stamp_results(r, r.to_institution()));
    r.clear_attached_result_verdicts();
    for (auto& v : verdicts) *r.add_attached_result_verdicts() = std::move(v);
  }
  r.set_id(NewId("ref", now));
  r.set_state(v1::SUBMITTED);
  *r.mutable_submitted_at() = TimeUtil::MicrosecondsToTimestamp(now);
  *r.mutable_updated_at() = r.submitted_at();
  *r.mutable_decision_deadline() = TimeUtil::MicrosecondsToTimestamp(due);

  storage::ReferralRecord record;
  record.id = r.id();
  record.sender = caller.id;
  record.receiver = r.to_institution();
  record.client_request_id = r.client_request_id();
  record.request_digest = digest;
  record.state = v1::SUBMITTED;
  record.priority = r.priority();
  record.direction = r.direction();
  record.journey_id = r.journey_id();
  record.alliance = caller.alliance;
  record.submitted_at = now;
  record.updated_at = now;
  record.decision_due_at = due;
  record.body = r.SerializeAsString();

  v1::ReferralEvent event;
  event.set_action(v1::SUBMIT);
  event.set_to_state(v1::SUBMITTED);
  event.mutable_actor()->set_institution(caller.id);
  *event.mutable_actor()->mutable_doctor() = r.from().doctor();
  *event.mutable_at() = r.submitted_at();
  event.set_client_request_id(r.client_request_id());
  storage::ReferralEventRecord event_record{r.id(),     caller.id, "",
                                            v1::SUBMIT, now,       event.SerializeAsString()};
  v1::Delivery payload;
  *payload.mutable_referral() = r;
  std::vector<storage::NewMessage> messages = {
      Message(QueueName{record.receiver, v1::REFERRALS}, r.priority(), r.id(), payload)};

  storage::AuditScope::Touch(r.id(), PatientKey(r.patient()));
  ASSIGN_OR_RETURN(storage::SubmitResult stored,
                   store_.SubmitReferral(record, event_record, messages));
  SubmitOutcome out;
  out.duplicate = stored.duplicate;
  if (out.duplicate) {
    ASSIGN_OR_RETURN(out.referral, Load(stored.referral, /*with_history=*/false));
  } else {
    out.referral = std::move(r);  // as stored: what Load would parse back from record.body
  }
  if (!out.duplicate) {
    spdlog::info("referral submitted id={} journey={} direction={} from={} to={} priority={}",
                 record.id, record.journey_id,
                 v1::Direction_Name(static_cast<v1::Direction>(record.direction)), caller.id,
                 record.receiver, v1::Priority_Name(static_cast<v1::Priority>(record.priority)));
    Announce(messages);
    if (hooks_.deadline_set) hooks_.deadline_set(due);
  }
  return out;
}

absl::StatusOr<ReferralWorkflow::Prepared> ReferralWorkflow::Prepare(
    const Change& c, const storage::ReferralRecord& rec, Micros now) {
  if (!c.expected_receiver.empty() && rec.receiver != c.expected_receiver) {
    return absl::FailedPreconditionError("receiver: no longer the receiver of this referral");
  }
  if (c.only_while_due_at != 0 && rec.decision_due_at != c.only_while_due_at) {
    return absl::FailedPreconditionError("decision deadline: handled meanwhile");
  }
  Party party = PartyOf(c.actor.institution(), rec);
  auto from = static_cast<v1::ReferralState>(rec.state);
  ASSIGN_OR_RETURN(v1::ReferralState next, NextReferralState(from, c.action, party));
  Referral body;
  if (!body.ParseFromString(rec.body)) return absl::DataLossError("stored referral is damaged");
  if (c.touch_audit_scope) storage::AuditScope::Touch(rec.id, PatientKey(body.patient()));

  v1::ReferralEvent event;
  event.set_action(c.action);
  event.set_from_state(from);
  event.set_to_state(next);
  *event.mutable_actor() = c.actor;
  *event.mutable_at() = TimeUtil::MicrosecondsToTimestamp(now);
  event.set_client_request_id(c.client_request_id);
  if (c.fill) c.fill(event);

  Prepared p;
  storage::ReferralRecord& after = p.after;
  after = rec;
  after.state = next;
  after.updated_at = now;
  after.decision_due_at = DecisionPending(next) ? rec.decision_due_at : 0;
  after.version = rec.version + 1;
  const RerouteRule* reroute =
      c.action == v1::ESCALATE ? FindReroute(rec.receiver, body.specialty()) : nullptr;
  if (reroute != nullptr) {
    event.set_rerouted_from(rec.receiver);
    event.set_rerouted_to(reroute->to);
    after.receiver = reroute->to;
    body.set_to_institution(reroute->to);
    if (body.attached_result_ids_size() > 0 && hooks_.stamp_results) {
      auto verdicts = hooks_.stamp_results(body, reroute->to);  // for the new receiver
      if (verdicts.ok()) {
        body.clear_attached_result_verdicts();
        for (auto& v : *verdicts) *body.add_attached_result_verdicts() = std::move(v);
      }
    }
  }
  body.set_state(next);
  *body.mutable_updated_at() = event.at();
  if (after.decision_due_at == 0) body.clear_decision_deadline();
  after.body = body.SerializeAsString();

  std::vector<storage::NewMessage> messages;
  if (party == Party::kReceiver || party == Party::kBroker) {
    messages.push_back(UpdateFor(rec.sender, after, event, v1::REFERRAL_UPDATES));
  }
  if (party == Party::kSender) {
    messages.push_back(UpdateFor(rec.receiver, after, event, v1::REFERRAL_UPDATES));
  }
  if (c.action == v1::ESCALATE) {
    messages.push_back(UpdateFor(rec.alliance, after, event, v1::ALLIANCE));
    if (reroute != nullptr) {
      messages.push_back(UpdateFor(rec.receiver, after, event, v1::REFERRAL_UPDATES));
      v1::Delivery payload;
      *payload.mutable_referral() = body;
      messages.push_back(
          Message(QueueName{after.receiver, v1::REFERRALS}, rec.priority, rec.id, payload));
    }
  }
  p.change = storage::ReferralChange{rec.id,
                                     rec.version,
                                     after.state,
                                     after.receiver,
                                     after.decision_due_at,
                                     now,
                                     after.body,
                                     {rec.id, c.actor.institution(), c.client_request_id, c.action,
                                      now, event.SerializeAsString()},
                                     std::move(messages)};
  return p;
}

void ReferralWorkflow::Recorded(const storage::ReferralChange& change) {
  Announce(change.messages);
  v1::ReferralEvent event;
  event.ParseFromString(change.event.body);
  spdlog::info(
      "referral {} id={} by={} {}->{}{}", v1::ReferralAction_Name(event.action()),
      change.referral_id,
      event.actor().institution().empty() ? "refbroker" : event.actor().institution(),
      v1::ReferralState_Name(event.from_state()), v1::ReferralState_Name(event.to_state()),
      event.rerouted_to().empty() ? "" : absl::StrCat(" rerouted_to=", event.rerouted_to()));
}

absl::StatusOr<storage::ChangeResult> ReferralWorkflow::Apply(Change& c) {
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    ASSIGN_OR_RETURN(storage::ReferralRecord rec, store_.GetReferral(c.referral_id));
    ASSIGN_OR_RETURN(Prepared p, Prepare(c, rec, clock_.Now()));
    auto result = store_.ChangeReferral(p.change);
    if (absl::IsAborted(result.status())) continue;  // someone else changed it: re-read
    if (!result.ok()) return result.status();
    if (!result->duplicate) {
      c.after = std::move(p.after);
      Recorded(p.change);
    }
    return result;
  }
  return absl::AbortedError("referral: too much concurrent change; retry");
}

absl::StatusOr<TransitionOutcome> ReferralWorkflow::Transition(
    const auth::Principal& caller, const v1::TransitionReferralRequest& request) {
  RETURN_IF_ERROR(ValidateTransition(request));
  if (!caller.IsInstitution()) {
    return absl::PermissionDeniedError(
        "action: only the sender or the receiver acts on a referral");
  }
  v1::ReferralAction action = ActionOf(request);
  TransitionOutcome out;
  // A retry of a request already applied returns the referral as it is now.
  ASSIGN_OR_RETURN(auto earlier, store_.FindReferralEvent(caller.id, request.client_request_id()));
  if (earlier) {
    if (earlier->referral_id != request.referral_id() || earlier->action != action) {
      return absl::AlreadyExistsError(
          "client_request_id: already used by this institution for another request");
    }
    ASSIGN_OR_RETURN(auto rec, store_.GetReferral(request.referral_id()));
    ASSIGN_OR_RETURN(out.referral, Load(rec, true));
    out.duplicate = true;
    return out;
  }
  ASSIGN_OR_RETURN(auto rec, store_.GetReferral(request.referral_id()));
  if (PartyOf(caller.id, rec) == Party::kOther) {
    return absl::PermissionDeniedError(
        absl::StrCat("referral_id: ", caller.id, " is neither sender nor receiver"));
  }
  Change c;
  c.referral_id = request.referral_id();
  c.action = action;
  c.actor.set_institution(caller.id);
  *c.actor.mutable_doctor() = request.doctor();
  c.client_request_id = request.client_request_id();
  c.fill = [&request](v1::ReferralEvent& e) { FillEvent(request, e); };
  ASSIGN_OR_RETURN(storage::ChangeResult result, Apply(c));
  out.duplicate = result.duplicate;
  ASSIGN_OR_RETURN(auto now_rec, store_.GetReferral(request.referral_id()));
  ASSIGN_OR_RETURN(out.referral, Load(now_rec, true));
  return out;
}

absl::Status ReferralWorkflow::MarkDelivered(const std::string& referral_id,
                                             const std::string& owner) {
  Change c;
  c.referral_id = referral_id;
  c.action = v1::DELIVER;
  c.actor = BrokerActor();
  c.expected_receiver = owner;
  auto result = Apply(c);
  // Already accepted, re-routed or delivered before: nothing to record.
  if (absl::IsFailedPrecondition(result.status())) return absl::OkStatus();
  return result.status();
}

std::optional<storage::ReferralChange> ReferralWorkflow::DeliveredChange(
    const storage::ReferralRecord& rec, const std::string& owner) {
  Change c;
  c.referral_id = rec.id;
  c.action = v1::DELIVER;
  c.actor = BrokerActor();
  c.expected_receiver = owner;
  c.touch_audit_scope = false;
  auto p = Prepare(c, rec, clock_.Now());
  if (!p.ok()) {
    if (!absl::IsFailedPrecondition(p.status())) {
      spdlog::warn("referral id={} DELIVERED not recorded: {}", rec.id, p.status().ToString());
    }
    return std::nullopt;
  }
  return std::move(p->change);
}

absl::StatusOr<size_t> ReferralWorkflow::EscalateDue() {
  size_t escalated = 0;
  for (;;) {
    ASSIGN_OR_RETURN(auto due, store_.ListDueReferrals(clock_.Now(), 100));
    if (due.empty()) return escalated;
    size_t progressed = 0;
    for (const storage::ReferralRecord& rec : due) {
      Change c;
      c.referral_id = rec.id;
      c.action = v1::ESCALATE;
      c.actor = BrokerActor();
      c.fill = [](v1::ReferralEvent& e) { e.set_text("decision deadline passed"); };
      c.only_while_due_at = rec.decision_due_at;
      auto result = Apply(c);
      if (result.ok()) {
        escalated++;
        progressed++;
      } else if (absl::IsFailedPrecondition(result.status())) {
        // Another broker escalated it, or a decision came first: nothing to do.
      } else {
        spdlog::error("referral id={} escalation failed: {}", rec.id, result.status().ToString());
      }
    }
    if (progressed == 0) return escalated;  // nothing moved: do not spin
  }
}

absl::StatusOr<Referral> ReferralWorkflow::Load(const storage::ReferralRecord& rec,
                                                bool with_history) {
  Referral r;
  if (!r.ParseFromString(rec.body)) return absl::DataLossError("stored referral is damaged");
  storage::AuditScope::Touch(rec.id, PatientKey(r.patient()));
  r.set_state(static_cast<v1::ReferralState>(rec.state));
  r.set_to_institution(rec.receiver);
  r.set_journey_id(rec.journey_id);
  *r.mutable_updated_at() = TimeUtil::MicrosecondsToTimestamp(rec.updated_at);
  if (rec.decision_due_at != 0) {
    *r.mutable_decision_deadline() = TimeUtil::MicrosecondsToTimestamp(rec.decision_due_at);
  } else {
    r.clear_decision_deadline();
  }
  if (with_history) {
    ASSIGN_OR_RETURN(auto events, store_.ListReferralEvents(rec.id));
    for (const auto& e : events) {
      if (!r.add_history()->ParseFromString(e.body)) {
        return absl::DataLossError("stored referral event is damaged");
      }
    }
  }
  return r;
}

absl::StatusOr<Referral> ReferralWorkflow::Get(const auth::Principal& caller,
                                               const std::string& id) {
  if (id.empty() || id.size() > 64) return Invalid("id", "required, at most 64 characters");
  ASSIGN_OR_RETURN(storage::ReferralRecord rec, store_.GetReferral(id));
  storage::AuditScope::Touch(rec.id, "");  // a refused read is on record against the referral
  // Unknown ids are NOT_FOUND, others' PERMISSION_DENIED: ids are unguessable ULIDs, and a
  // sender needs NOT_FOUND to tell a lost submission from a foreign one.
  RETURN_IF_ERROR(policy_.CanReadReferral(caller, rec.sender, rec.receiver));
  return Load(rec, true);
}

absl::StatusOr<v1::ListReferralsResponse> ReferralWorkflow::List(
    const auth::Principal& caller, const v1::ListReferralsRequest& req) {
  storage::ReferralQuery q;
  if (caller.role == auth::Role::kAuditor) {
    // As GetReferral: auditors read the audit trail and the report, not patients' referrals.
    return absl::PermissionDeniedError(
        absl::StrCat("caller: ", caller.id, " is an auditor; auditors do not read referrals"));
  }
  if (caller.IsInstitution()) {
    q.party = caller.id;
  } else {
    q.alliance = caller.alliance;  // operators and auditors: their alliance
  }
  if (!req.institution().empty()) {
    if (auto s = ValidateCreditCode(req.institution()); !s.ok()) {
      return Invalid("institution", s.message());
    }
    q.institution = req.institution();
  }
  if (!v1::Direction_IsValid(req.direction())) return Invalid("direction", "unknown value");
  if (!v1::ReferralState_IsValid(req.state())) return Invalid("state", "unknown value");
  if (!v1::Priority_IsValid(req.priority())) return Invalid("priority", "unknown value");
  if (req.page_size() > 500) return Invalid("page_size", "at most 500");
  if (req.journey_id().size() > 64) return Invalid("journey_id", "longer than 64 characters");
  q.direction = req.direction();
  q.state = req.state();
  q.priority = req.priority();
  q.journey_id = req.journey_id();
  if (req.has_submitted_from())
    q.submitted_from = TimeUtil::TimestampToMicroseconds(req.submitted_from());
  if (req.has_submitted_to())
    q.submitted_to = TimeUtil::TimestampToMicroseconds(req.submitted_to());
  if (!req.page_token().empty()) {
    auto colon = req.page_token().find(':');
    if (colon == std::string::npos) return Invalid("page_token", "not a token of this API");
    try {
      q.after_submitted_at = std::stoll(req.page_token().substr(0, colon));
    } catch (...) {
      return Invalid("page_token", "not a token of this API");
    }
    q.after_id = req.page_token().substr(colon + 1);
  }
  size_t page = req.page_size() == 0 ? 50 : req.page_size();
  q.limit = page + 1;
  ASSIGN_OR_RETURN(auto records, store_.ListReferrals(q));
  v1::ListReferralsResponse out;
  for (size_t i = 0; i < records.size() && i < page; ++i) {
    ASSIGN_OR_RETURN(*out.add_referrals(), Load(records[i], req.include_history()));
  }
  if (records.size() > page) {
    const auto& last = records[page - 1];
    out.set_next_page_token(absl::StrCat(last.submitted_at, ":", last.id));
  }
  return out;
}

}  // namespace refbroker::domain

#include "broker/domain/consult_workflow.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "broker/common/ids.h"
#include "broker/common/queue_name.h"
#include "broker/common/status_macros.h"
#include "broker/domain/consult_validator.h"
#include "broker/domain/identifiers.h"
#include "broker/domain/patient_key.h"
#include "broker/storage/audit_scope.h"
#include "google/protobuf/util/time_util.h"
#include "refbroker/v1/delivery.pb.h"

namespace refbroker::domain {
namespace {

namespace v1 = refbroker::v1;
using google::protobuf::util::TimeUtil;
using v1::Consult;

constexpr int kMaxRetries = 8;  // optimistic-concurrency retries of one change

Party PartyOf(const std::string& institution, const storage::ConsultRecord& r) {
  if (institution.empty()) return Party::kBroker;
  if (institution == r.requester) return Party::kSender;
  if (institution == r.target) return Party::kReceiver;
  return Party::kOther;
}

absl::Status Invalid(const std::string& field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

v1::Delivery UpdateDelivery(const storage::ConsultRecord& c, int state) {
  v1::Delivery d;
  v1::ConsultUpdate* u = d.mutable_consult_update();
  u->set_consult_id(c.id);
  u->set_priority(static_cast<v1::Priority>(c.priority));
  u->set_requester(c.requester);
  u->set_target(c.target);
  u->set_service(static_cast<v1::ConsultServiceType>(c.service));
  u->set_state(static_cast<v1::ConsultState>(state));
  return d;
}

storage::NewMessage Message(const QueueName& queue, int priority, const std::string& subject,
                            const v1::Delivery& payload) {
  return storage::NewMessage{queue.ToString(), priority, subject, payload.SerializeAsString()};
}

v1::Actor BrokerActor() {
  v1::Actor a;
  a.mutable_doctor()->set_id("refbroker");
  a.mutable_doctor()->set_name("refbroker");
  return a;
}

v1::ConsultAction ActionOf(const v1::TransitionConsultRequest& r) {
  switch (r.action_case()) {
    case v1::TransitionConsultRequest::kAccept:
      return v1::CONSULT_ACCEPT;
    case v1::TransitionConsultRequest::kDecline:
      return v1::CONSULT_DECLINE;
    case v1::TransitionConsultRequest::kSchedule:
      return v1::CONSULT_SCHEDULE;
    case v1::TransitionConsultRequest::kCancel:
      return v1::CONSULT_CANCEL;
    default:
      return v1::CONSULT_ACTION_UNSPECIFIED;
  }
}

bool Offers(const auth::Principal& p, const std::string& item,
            const std::vector<std::string>& list) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

int64_t PriorityDeadlines::For(v1::Priority p) const {
  return p == v1::EMERGENCY ? emergency_s : p == v1::URGENT ? urgent_s : routine_s;
}

// One attempted change: the input, and what it produced.
struct ConsultWorkflow::Change {
  std::string consult_id;
  v1::ConsultAction action = v1::CONSULT_ACTION_UNSPECIFIED;
  v1::Actor actor;
  std::string client_request_id;
  std::function<void(v1::ConsultEvent&)> fill;
  std::function<void(Consult&, Micros& due)> mutate;  // body and deadline after the change
  std::optional<v1::ConsultReport> report;            // CONSULT_REPORT, CONSULT_ADDENDUM
  // Act only while the deadline is still this one: an escalation happens once even when
  // several brokers on one database see the deadline pass.
  Micros only_while_due_at = 0;
  storage::ConsultRecord after;  // output
};

ConsultWorkflow::ConsultWorkflow(storage::Store& store, const auth::Registry& registry,
                                 const auth::AccessPolicy& policy, const Clock& clock,
                                 ConsultOptions options, Hooks hooks)
    : store_(store),
      registry_(registry),
      policy_(policy),
      clock_(clock),
      options_(std::move(options)),
      hooks_(std::move(hooks)) {}

Micros ConsultWorkflow::AcceptDeadline(v1::Priority priority, Micros from) const {
  return from + options_.accept.For(priority) * 1000000;
}

Micros ConsultWorkflow::ReportDeadline(v1::ConsultServiceType service, v1::Priority priority,
                                       Micros from) const {
  auto it = options_.report_by_service.find(service);
  const PriorityDeadlines& d =
      it != options_.report_by_service.end() ? it->second : options_.report;
  return from + d.For(priority) * 1000000;
}

void ConsultWorkflow::Announce(const std::vector<storage::NewMessage>& messages) {
  if (!hooks_.notify) return;
  for (const auto& m : messages) hooks_.notify(m.queue);
}

absl::Status ConsultWorkflow::CheckTarget(const auth::Principal& caller,
                                          const v1::ConsultTarget& t) {
  const auth::Principal* target = registry_.Find(t.institution());
  if (target == nullptr || !target->IsInstitution()) {
    return absl::NotFoundError(
        absl::StrCat("consult.target.institution: no institution '", t.institution(), "'"));
  }
  if (target->id == caller.id) {
    return Invalid("consult.target.institution", "an institution does not consult itself");
  }
  if (target->alliance != caller.alliance && !Offers(caller, target->id, caller.partners)) {
    return absl::PermissionDeniedError(
        "consult.target.institution: outside the caller's alliance and partners");
  }
  if (t.service() == v1::SPECIALTY_OPINION) {
    if (target->role != auth::Role::kHospital ||
        !Offers(*target, t.specialty(), target->specialties)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "consult.target.specialty: ", target->id, " offers no specialty '", t.specialty(), "'"));
    }
    return absl::OkStatus();
  }
  std::string service = v1::ConsultServiceType_Name(t.service());
  if (!Offers(*target, service, target->services)) {
    return absl::FailedPreconditionError(
        absl::StrCat("consult.target.service: ", target->id, " does not offer ", service));
  }
  return absl::OkStatus();
}

absl::StatusOr<Stored<Consult>> ConsultWorkflow::Request(const auth::Principal& caller,
                                                         const Consult& submitted) {
  Micros now = clock_.Now();
  RETURN_IF_ERROR(ValidateConsultRequest(submitted, now, options_.max_consult_bytes));
  if (!caller.IsInstitution() || submitted.from().institution() != caller.id) {
    return absl::PermissionDeniedError(absl::StrCat("consult.from.institution: the caller ",
                                                    caller.id, " may only request as itself"));
  }
  RETURN_IF_ERROR(CheckTarget(caller, submitted.target()));
  Consult c = submitted;
  c.clear_id();  // what the broker sets
  c.clear_state();
  c.clear_requested_at();
  c.clear_updated_at();
  c.clear_deadline();
  c.clear_escalated();
  c.clear_attached_result_verdicts();
  c.clear_schedule();
  c.clear_reports();
  c.clear_history();
  c.clear_thread();
  c.clear_converted_referral_id();
  std::string digest = MessageDigest(c);
  if (c.attached_result_ids_size() > 0 && hooks_.stamp_results) {
    ASSIGN_OR_RETURN(auto verdicts,
                     hooks_.stamp_results(c.patient(), c.attached_result_ids(),
                                          c.target().institution(), "consult.attached_result_ids"));
    for (auto& v : verdicts) *c.add_attached_result_verdicts() = std::move(v);
  }
  Micros due = AcceptDeadline(c.priority(), now);
  c.set_id(NewId("con", now));
  c.set_state(v1::CONSULT_REQUESTED);
  *c.mutable_requested_at() = TimeUtil::MicrosecondsToTimestamp(now);
  *c.mutable_updated_at() = c.requested_at();
  *c.mutable_deadline() = TimeUtil::MicrosecondsToTimestamp(due);

  storage::ConsultRecord rec;
  rec.id = c.id();
  rec.requester = caller.id;
  rec.target = c.target().institution();
  rec.client_request_id = c.client_request_id();
  rec.request_digest = digest;
  rec.state = v1::CONSULT_REQUESTED;
  rec.priority = c.priority();
  rec.service = c.target().service();
  rec.alliance = caller.alliance;
  rec.requested_at = now;
  rec.updated_at = now;
  rec.due_at = due;
  rec.body = c.SerializeAsString();

  v1::ConsultEvent event;
  event.set_action(v1::CONSULT_REQUEST);
  event.set_to_state(v1::CONSULT_REQUESTED);
  event.mutable_actor()->set_institution(caller.id);
  *event.mutable_actor()->mutable_doctor() = c.from().doctor();
  *event.mutable_at() = c.requested_at();
  event.set_client_request_id(c.client_request_id());
  storage::ConsultEventRecord event_rec{
      c.id(), caller.id, "", v1::CONSULT_REQUEST, now, event.SerializeAsString()};
  v1::Delivery payload;
  *payload.mutable_consult() = c;
  std::vector<storage::NewMessage> messages = {
      Message(QueueName{rec.target, v1::CONSULTS}, c.priority(), c.id(), payload)};
  storage::AuditScope::Touch(c.id(), PatientKey(c.patient()));
  ASSIGN_OR_RETURN(auto stored, store_.SubmitConsult(rec, event_rec, messages));
  Stored<Consult> out;
  out.duplicate = stored.duplicate;
  ASSIGN_OR_RETURN(out.value, Load(stored.consult, false, false));
  if (!out.duplicate) {
    spdlog::info("consult requested id={} from={} to={} service={} priority={}", rec.id, caller.id,
                 rec.target, v1::ConsultServiceType_Name(c.target().service()),
                 v1::Priority_Name(c.priority()));
    Announce(messages);
    if (hooks_.deadline_set) hooks_.deadline_set(due);
  }
  return out;
}

absl::StatusOr<storage::ConsultChangeResult> ConsultWorkflow::Apply(Change& c) {
  for (int attempt = 0; attempt < kMaxRetries; ++attempt) {
    ASSIGN_OR_RETURN(storage::ConsultRecord rec, store_.GetConsult(c.consult_id));
    if (c.only_while_due_at != 0 && rec.due_at != c.only_while_due_at) {
      return absl::FailedPreconditionError("deadline: handled meanwhile");
    }
    Party party = PartyOf(c.actor.institution(), rec);
    auto from = static_cast<v1::ConsultState>(rec.state);
    auto next = NextConsultState(from, c.action, party);
    if (!next.ok()) return next.status();
    Consult body;
    if (!body.ParseFromString(rec.body)) return absl::DataLossError("stored consult is damaged");
    storage::AuditScope::Touch(rec.id, PatientKey(body.patient()));
    Micros now = clock_.Now();

    v1::ConsultEvent event;
    event.set_action(c.action);
    event.set_from_state(from);
    event.set_to_state(*next);
    *event.mutable_actor() = c.actor;
    *event.mutable_at() = TimeUtil::MicrosecondsToTimestamp(now);
    event.set_client_request_id(c.client_request_id);
    if (c.report) event.set_report_id(c.report->id());
    if (c.fill) c.fill(event);

    storage::ConsultRecord after = rec;
    after.state = *next;
    after.updated_at = now;
    Micros due = rec.due_at;
    if (c.action == v1::CONSULT_ACCEPT) {
      due = ReportDeadline(static_cast<v1::ConsultServiceType>(rec.service),
                           static_cast<v1::Priority>(rec.priority), now);
    }
    if (c.action == v1::CONSULT_ESCALATE) {
      due = 0;
      body.set_escalated(true);
    }
    if (c.mutate) c.mutate(body, due);
    if (!AcceptancePending(*next) && !ReportPending(*next)) due = 0;
    after.due_at = due;
    body.set_state(*next);
    *body.mutable_updated_at() = event.at();
    if (due != 0) {
      *body.mutable_deadline() = TimeUtil::MicrosecondsToTimestamp(due);
    } else {
      body.clear_deadline();
    }
    after.body = body.SerializeAsString();

    v1::Delivery update = UpdateDelivery(after, *next);
    *update.mutable_consult_update()->mutable_event() = event;
    if (c.report) *update.mutable_consult_update()->mutable_report() = *c.report;
    std::vector<storage::NewMessage> messages;
    if (party != Party::kSender) {
      messages.push_back(
          Message(QueueName{rec.requester, v1::CONSULT_UPDATES}, rec.priority, rec.id, update));
    }
    if (party != Party::kReceiver) {
      messages.push_back(
          Message(QueueName{rec.target, v1::CONSULT_UPDATES}, rec.priority, rec.id, update));
    }
    if (c.action == v1::CONSULT_ESCALATE) {
      messages.push_back(
          Message(QueueName{rec.alliance, v1::ALLIANCE}, rec.priority, rec.id, update));
    }
    storage::ConsultChange change;
    change.consult_id = rec.id;
    change.expected_version = rec.version;
    change.state = after.state;
    change.due_at = after.due_at;
    change.updated_at = now;
    change.body = after.body;
    change.event = {rec.id, c.actor.institution(),    c.client_request_id, c.action,
                    now,    event.SerializeAsString()};
    if (c.report) {
      change.report = storage::ConsultReportRow{c.report->id(),
                                                rec.id,
                                                c.report->sha256(),
                                                c.report->content().addendum_to(),
                                                now,
                                                c.report->SerializeAsString()};
    }
    change.messages = messages;
    auto result = store_.ChangeConsult(change);
    if (absl::IsAborted(result.status())) continue;  // changed meanwhile: re-read
    if (!result.ok()) return result.status();
    if (!result->duplicate) {
      after.version = rec.version + 1;
      c.after = after;
      Announce(messages);
      if (after.due_at != 0 && after.due_at != rec.due_at && hooks_.deadline_set) {
        hooks_.deadline_set(after.due_at);
      }
      spdlog::info("consult {} id={} by={} {}->{}", v1::ConsultAction_Name(c.action), rec.id,
                   c.actor.institution().empty() ? "refbroker" : c.actor.institution(),
                   v1::ConsultState_Name(from), v1::ConsultState_Name(*next));
    }
    return result;
  }
  return absl::AbortedError("consult: too much concurrent change; retry");
}

absl::StatusOr<Stored<Consult>> ConsultWorkflow::Transition(
    const auth::Principal& caller, const v1::TransitionConsultRequest& request) {
  RETURN_IF_ERROR(ValidateConsultTransition(request, clock_.Now()));
  ASSIGN_OR_RETURN(storage::ConsultRecord rec, PartyRecord(caller, request.consult_id()));
  v1::ConsultAction action = ActionOf(request);
  Stored<Consult> out;
  // A retry of a request already applied returns the consult as it is now.
  ASSIGN_OR_RETURN(auto earlier, store_.FindConsultEvent(caller.id, request.client_request_id()));
  if (earlier) {
    if (earlier->consult_id != rec.id || earlier->action != action) {
      return absl::AlreadyExistsError(
          "client_request_id: already used by this institution for another request");
    }
    ASSIGN_OR_RETURN(out.value, Load(rec, true, false));
    out.duplicate = true;
    return out;
  }
  Change c;
  c.consult_id = rec.id;
  c.action = action;
  c.actor.set_institution(caller.id);
  *c.actor.mutable_doctor() = request.doctor();
  c.client_request_id = request.client_request_id();
  c.fill = [&request](v1::ConsultEvent& e) {
    if (request.has_accept()) e.set_text(request.accept().note());
    if (request.has_decline()) {
      e.set_decline_reason(request.decline().reason());
      e.set_text(request.decline().text());
    }
    if (request.has_schedule()) *e.mutable_schedule() = request.schedule();
    if (request.has_cancel()) e.set_text(request.cancel().reason());
  };
  if (request.has_schedule()) {
    c.mutate = [&request](Consult& body, Micros& due) {
      *body.mutable_schedule() = request.schedule();
      Micros end = TimeUtil::TimestampToMicroseconds(request.schedule().session_at()) +
                   int64_t{request.schedule().duration_minutes()} * 60 * 1000000;
      due = std::max(due, end);  // the report is not due before the session has ended
    };
  }
  ASSIGN_OR_RETURN(auto result, Apply(c));
  out.duplicate = result.duplicate;
  if (result.duplicate && (result.event.consult_id != rec.id || result.event.action != action)) {
    return absl::AlreadyExistsError(
        "client_request_id: already used by this institution for another request");
  }
  ASSIGN_OR_RETURN(auto now_rec, store_.GetConsult(rec.id));
  ASSIGN_OR_RETURN(out.value, Load(now_rec, true, false));
  return out;
}

absl::StatusOr<v1::ConsultReport> ConsultWorkflow::FindReport(const std::string& consult_id,
                                                              const std::string& report_id) {
  ASSIGN_OR_RETURN(auto rows, store_.ListConsultReports(consult_id));
  for (const auto& row : rows) {
    if (row.id != report_id) continue;
    v1::ConsultReport r;
    if (!r.ParseFromString(row.body)) return absl::DataLossError("stored report is damaged");
    return r;
  }
  return absl::NotFoundError(
      absl::StrCat("content.addendum_to: no report '", report_id, "' on this consult"));
}

absl::StatusOr<Stored<v1::ConsultReport>> ConsultWorkflow::IssueReport(
    const auth::Principal& caller, const v1::IssueReportRequest& request) {
  RETURN_IF_ERROR(ValidateReportRequest(request));
  ASSIGN_OR_RETURN(storage::ConsultRecord rec, PartyRecord(caller, request.consult_id()));
  bool addendum = !request.content().addendum_to().empty();
  v1::ConsultAction action = addendum ? v1::CONSULT_ADDENDUM : v1::CONSULT_REPORT;
  Stored<v1::ConsultReport> out;
  ASSIGN_OR_RETURN(auto earlier, store_.FindConsultEvent(caller.id, request.client_request_id()));
  if (earlier) {
    v1::ConsultEvent e;
    if (earlier->consult_id != rec.id || earlier->action != action ||
        !e.ParseFromString(earlier->body)) {
      return absl::AlreadyExistsError(
          "client_request_id: already used by this institution for another request");
    }
    ASSIGN_OR_RETURN(out.value, FindReport(rec.id, e.report_id()));
    out.duplicate = true;
    return out;
  }
  auto allowed =
      NextConsultState(static_cast<v1::ConsultState>(rec.state), action, PartyOf(caller.id, rec));
  if (absl::IsFailedPrecondition(allowed.status()) && rec.state == v1::CONSULT_REPORTED) {
    return absl::FailedPreconditionError(
        "content.addendum_to: the consult is REPORTED and its report cannot be changed; "
        "issue an addendum that names it");
  }
  RETURN_IF_ERROR(allowed.status());  // checked before a reading is published
  if (addendum) RETURN_IF_ERROR(FindReport(rec.id, request.content().addendum_to()).status());
  Consult body;
  if (!body.ParseFromString(rec.body)) return absl::DataLossError("stored consult is damaged");
  Micros now = clock_.Now();
  v1::ConsultReport report;
  report.set_id(NewId("rpt", now));
  v1::ReportContent* content = report.mutable_content();
  *content = request.content();
  content->set_consult_id(rec.id);
  content->set_institution(caller.id);
  *content->mutable_issued_at() = TimeUtil::MicrosecondsToTimestamp(now);
  if (content->has_reading()) {
    if (!IsReadingService(static_cast<v1::ConsultServiceType>(rec.service))) {
      return Invalid("content.reading",
                     "only a reading service (ECG, imaging, pathology) "
                     "publishes a reading");
    }
    v1::ResultRecord reading = content->reading();
    reading.set_client_request_id(absl::StrCat("report:", request.client_request_id()));
    if (reading.kind() == v1::RESULT_KIND_UNSPECIFIED) {
      reading.set_kind(rec.service == v1::ECG_READING       ? v1::ECG
                       : rec.service == v1::IMAGING_READING ? v1::IMAGING
                                                            : v1::PATHOLOGY);
    }
    *reading.mutable_patient() = body.patient();
    reading.set_performing_institution(caller.id);
    reading.set_addressed_to(rec.requester);
    reading.set_conclusion(content->opinion());
    *reading.mutable_reporting_doctor() = content->consultant();
    if (!reading.has_performed_at()) *reading.mutable_performed_at() = body.requested_at();
    *reading.mutable_reported_at() = content->issued_at();
    if (!hooks_.publish_reading) return absl::InternalError("reading publication not wired");
    auto published = hooks_.publish_reading(caller, reading);
    if (!published.ok()) {
      return absl::Status(published.status().code(),
                          absl::StrCat("content.reading.", published.status().message()));
    }
    report.set_result_id(published->id());
    *content->mutable_reading() = reading;
    content->mutable_reading()->set_id(published->id());
  }
  report.set_sha256(MessageDigest(*content));
  report.set_signer(absl::StrCat(caller.id, "/", content->consultant().id()));

  Change c;
  c.consult_id = rec.id;
  c.action = action;
  c.actor.set_institution(caller.id);
  *c.actor.mutable_doctor() = content->consultant();
  c.client_request_id = request.client_request_id();
  c.report = report;
  ASSIGN_OR_RETURN(auto result, Apply(c));
  if (result.duplicate) {  // a concurrent retry of the same request won
    v1::ConsultEvent e;
    if (!e.ParseFromString(result.event.body)) return absl::DataLossError("damaged event");
    ASSIGN_OR_RETURN(out.value, FindReport(rec.id, e.report_id()));
    out.duplicate = true;
    return out;
  }
  out.value = report;
  return out;
}

absl::StatusOr<Stored<v1::ConsultMessage>> ConsultWorkflow::Post(const auth::Principal& caller,
                                                                 const v1::ConsultMessage& in) {
  RETURN_IF_ERROR(ValidateThreadMessage(in));
  ASSIGN_OR_RETURN(storage::ConsultRecord rec, PartyRecord(caller, in.consult_id()));
  if (!ThreadOpen(static_cast<v1::ConsultState>(rec.state))) {
    return absl::FailedPreconditionError("message.consult_id: the consult was cancelled");
  }
  Consult body;
  if (!body.ParseFromString(rec.body)) return absl::DataLossError("stored consult is damaged");
  if (in.result_ids_size() > 0 && hooks_.stamp_results) {
    RETURN_IF_ERROR(
        hooks_.stamp_results(body.patient(), in.result_ids(), caller.id, "message.result_ids")
            .status());
  }
  Micros now = clock_.Now();
  v1::ConsultMessage m = in;
  m.set_id(NewId("msg", now));
  m.mutable_author()->set_institution(caller.id);
  *m.mutable_sent_at() = TimeUtil::MicrosecondsToTimestamp(now);
  storage::ConsultMessageRow row;
  row.id = m.id();
  row.consult_id = rec.id;
  row.author = caller.id;
  row.client_request_id = m.client_request_id();
  row.at = now;
  std::string other = caller.id == rec.requester ? rec.target : rec.requester;
  std::vector<storage::NewMessage> sent;
  auto announce = [&](storage::ConsultMessageRow& r) {
    m.set_seq(r.seq);
    r.body = m.SerializeAsString();
    v1::Delivery d = UpdateDelivery(rec, rec.state);
    *d.mutable_consult_update()->mutable_message() = m;
    sent = {Message(QueueName{other, v1::CONSULT_UPDATES}, rec.priority, rec.id, d)};
    return sent;
  };
  ASSIGN_OR_RETURN(auto stored, store_.AppendConsultMessage(row, announce));
  Stored<v1::ConsultMessage> out;
  out.duplicate = stored.duplicate;
  if (!out.value.ParseFromString(stored.row.body)) {
    return absl::DataLossError("stored message is damaged");
  }
  if (!stored.duplicate) {
    Announce(sent);
    if (hooks_.message_stored) hooks_.message_stored(out.value);
  }
  return out;
}

absl::StatusOr<v1::ConvertToReferralResponse> ConsultWorkflow::Convert(
    const auth::Principal& caller, const v1::ConvertToReferralRequest& request) {
  RETURN_IF_ERROR(ValidateConversion(request));
  ASSIGN_OR_RETURN(storage::ConsultRecord rec, PartyRecord(caller, request.consult_id()));
  if (PartyOf(caller.id, rec) != Party::kSender) {
    return absl::PermissionDeniedError("consult_id: only the requester converts a consult");
  }
  Consult body;
  if (!body.ParseFromString(rec.body)) return absl::DataLossError("stored consult is damaged");
  if (!body.converted_referral_id().empty()) {
    // A retry of the conversion returns it; another conversion is refused.
    ASSIGN_OR_RETURN(auto event, store_.FindConsultEvent(caller.id, request.client_request_id()));
    if (!event || event->consult_id != rec.id) {
      return absl::FailedPreconditionError(
          absl::StrCat("consult_id: already converted to referral ", body.converted_referral_id()));
    }
  }
  RETURN_IF_ERROR(NextConsultState(static_cast<v1::ConsultState>(rec.state), v1::CONSULT_CONVERT,
                                   Party::kSender)
                      .status());
  v1::Referral r;
  r.set_client_request_id(request.client_request_id());
  r.set_direction(v1::UP);
  r.set_priority(static_cast<v1::Priority>(rec.priority));
  *r.mutable_patient() = body.patient();
  r.mutable_from()->set_institution(caller.id);
  r.mutable_from()->set_department(request.department());
  *r.mutable_from()->mutable_doctor() = request.doctor();
  const auth::Principal* target = registry_.Find(rec.target);
  r.set_to_institution(!request.to_institution().empty() ? request.to_institution()
                       : target != nullptr && target->role == auth::Role::kHospital ? rec.target
                                                                                    : "");
  r.set_reason(request.reason());
  *r.mutable_diagnoses() = request.diagnoses();
  r.set_clinical_summary(body.clinical_summary());
  *r.mutable_consent() = body.consent();
  r.set_specialty(body.target().specialty());
  r.set_converted_from_consult_id(rec.id);
  *r.mutable_attached_result_ids() = body.attached_result_ids();
  ASSIGN_OR_RETURN(auto reports, store_.ListConsultReports(rec.id));
  for (const auto& row : reports) {
    v1::ConsultReport rep;
    if (rep.ParseFromString(row.body) && !rep.result_id().empty()) {
      r.add_attached_result_ids(rep.result_id());
    }
  }
  if (!hooks_.submit_referral) return absl::InternalError("referral submission not wired");
  ASSIGN_OR_RETURN(v1::Referral referral, hooks_.submit_referral(caller, r));

  Change c;
  c.consult_id = rec.id;
  c.action = v1::CONSULT_CONVERT;
  c.actor.set_institution(caller.id);
  *c.actor.mutable_doctor() = request.doctor();
  c.client_request_id = request.client_request_id();
  c.fill = [&referral](v1::ConsultEvent& e) { e.set_referral_id(referral.id()); };
  c.mutate = [&referral](Consult& b, Micros&) { b.set_converted_referral_id(referral.id()); };
  ASSIGN_OR_RETURN(auto result, Apply(c));
  v1::ConvertToReferralResponse out;
  out.set_duplicate(result.duplicate);
  *out.mutable_referral() = std::move(referral);
  ASSIGN_OR_RETURN(auto now_rec, store_.GetConsult(rec.id));
  ASSIGN_OR_RETURN(*out.mutable_consult(), Load(now_rec, true, false));
  return out;
}

absl::StatusOr<size_t> ConsultWorkflow::EscalateDue() {
  size_t escalated = 0;
  for (;;) {
    ASSIGN_OR_RETURN(auto due, store_.ListDueConsults(clock_.Now(), 100));
    if (due.empty()) return escalated;
    size_t progressed = 0;
    for (const storage::ConsultRecord& rec : due) {
      Change c;
      c.consult_id = rec.id;
      c.action = v1::CONSULT_ESCALATE;
      c.actor = BrokerActor();
      bool accepting = AcceptancePending(static_cast<v1::ConsultState>(rec.state));
      c.fill = [accepting](v1::ConsultEvent& e) {
        e.set_text(accepting ? "acceptance deadline passed" : "report deadline passed");
      };
      c.only_while_due_at = rec.due_at;
      auto result = Apply(c);
      if (result.ok()) {
        escalated++;
        progressed++;
      } else if (absl::IsFailedPrecondition(result.status())) {
        // Another broker escalated it, or the consult moved on first: nothing to do.
      } else {
        spdlog::error("consult id={} escalation failed: {}", rec.id, result.status().ToString());
      }
    }
    if (progressed == 0) return escalated;  // nothing moved: do not spin
  }
}

absl::StatusOr<storage::ConsultRecord> ConsultWorkflow::PartyRecord(const auth::Principal& caller,
                                                                    const std::string& id) {
  if (id.empty() || id.size() > 64) return Invalid("consult_id", "required, at most 64 characters");
  ASSIGN_OR_RETURN(storage::ConsultRecord rec, store_.GetConsult(id));
  storage::AuditScope::Touch(rec.id, "");  // a refused attempt is on record against the consult
  if (PartyOf(caller.id, rec) == Party::kOther || !caller.IsInstitution()) {
    return absl::PermissionDeniedError(
        absl::StrCat("consult_id: ", caller.id, " is neither requester nor consulted"));
  }
  return rec;
}

absl::StatusOr<Consult> ConsultWorkflow::Load(const storage::ConsultRecord& rec, bool with_history,
                                              bool with_thread) {
  Consult c;
  if (!c.ParseFromString(rec.body)) return absl::DataLossError("stored consult is damaged");
  storage::AuditScope::Touch(rec.id, PatientKey(c.patient()));
  c.set_state(static_cast<v1::ConsultState>(rec.state));
  *c.mutable_updated_at() = TimeUtil::MicrosecondsToTimestamp(rec.updated_at);
  ASSIGN_OR_RETURN(auto reports, store_.ListConsultReports(rec.id));
  for (const auto& row : reports) {
    if (!c.add_reports()->ParseFromString(row.body)) {
      return absl::DataLossError("stored report is damaged");
    }
  }
  if (with_history) {
    ASSIGN_OR_RETURN(auto events, store_.ListConsultEvents(rec.id));
    for (const auto& e : events) {
      if (!c.add_history()->ParseFromString(e.body)) {
        return absl::DataLossError("stored consult event is damaged");
      }
    }
  }
  if (with_thread) {
    ASSIGN_OR_RETURN(auto messages, store_.ListConsultMessages(rec.id, 0));
    for (const auto& m : messages) {
      if (!c.add_thread()->ParseFromString(m.body)) {
        return absl::DataLossError("stored thread message is damaged");
      }
    }
  }
  return c;
}

absl::StatusOr<Consult> ConsultWorkflow::Get(const auth::Principal& caller, const std::string& id,
                                             bool include_thread) {
  if (id.empty() || id.size() > 64) return Invalid("id", "required, at most 64 characters");
  ASSIGN_OR_RETURN(storage::ConsultRecord rec, store_.GetConsult(id));
  storage::AuditScope::Touch(rec.id, "");
  RETURN_IF_ERROR(policy_.CanReadConsult(caller, rec.requester, rec.target));
  return Load(rec, true, include_thread);
}

absl::StatusOr<v1::ListConsultsResponse> ConsultWorkflow::List(const auth::Principal& caller,
                                                               const v1::ListConsultsRequest& req) {
  storage::ConsultQuery q;
  if (caller.role == auth::Role::kAuditor) {
    // As GetConsult: auditors read the audit trail and the report, not patients' consults.
    return absl::PermissionDeniedError(
        absl::StrCat("caller: ", caller.id, " is an auditor; auditors do not read consults"));
  }
  if (caller.IsInstitution()) {
    q.party = caller.id;
  } else {
    q.alliance = caller.alliance;
  }
  if (!req.institution().empty()) {
    if (auto s = ValidateCreditCode(req.institution()); !s.ok()) {
      return Invalid("institution", s.message());
    }
    q.institution = req.institution();
  }
  if (!v1::ConsultState_IsValid(req.state())) return Invalid("state", "unknown value");
  if (!v1::ConsultServiceType_IsValid(req.service())) return Invalid("service", "unknown value");
  if (!v1::Priority_IsValid(req.priority())) return Invalid("priority", "unknown value");
  if (req.page_size() > 500) return Invalid("page_size", "at most 500");
  q.state = req.state();
  q.service = req.service();
  q.priority = req.priority();
  if (req.has_requested_from()) {
    q.requested_from = TimeUtil::TimestampToMicroseconds(req.requested_from());
  }
  if (req.has_requested_to())
    q.requested_to = TimeUtil::TimestampToMicroseconds(req.requested_to());
  if (!req.page_token().empty()) {
    auto colon = req.page_token().find(':');
    if (colon == std::string::npos) return Invalid("page_token", "not a token of this API");
    try {
      q.after_requested_at = std::stoll(req.page_token().substr(0, colon));
    } catch (...) {
      return Invalid("page_token", "not a token of this API");
    }
    q.after_id = req.page_token().substr(colon + 1);
  }
  size_t page = req.page_size() == 0 ? 50 : req.page_size();
  q.limit = page + 1;
  ASSIGN_OR_RETURN(auto records, store_.ListConsults(q));
  v1::ListConsultsResponse out;
  for (size_t i = 0; i < records.size() && i < page; ++i) {
    ASSIGN_OR_RETURN(*out.add_consults(), Load(records[i], false, false));
  }
  if (records.size() > page) {
    const auto& last = records[page - 1];
    out.set_next_page_token(absl::StrCat(last.requested_at, ":", last.id));
  }
  return out;
}

}  // namespace refbroker::domain

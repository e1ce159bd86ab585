#include "broker/domain/result_workflow.h"

#include <spdlog/spdlog.h>

#include <cctype>

#include "absl/strings/str_cat.h"
#include "broker/common/ids.h"
#include "broker/common/queue_name.h"
#include "broker/common/status_macros.h"
#include "broker/domain/identifiers.h"
#include "broker/domain/patient_key.h"
#include "broker/domain/referral_validator.h"
#include "broker/recognition/recognition_engine.h"
#include "broker/storage/audit_scope.h"
#include "google/protobuf/util/time_util.h"
#include "refbroker/v1/delivery.pb.h"

namespace refbroker::domain {
namespace {

namespace v1 = refbroker::v1;
using google::protobuf::util::TimeUtil;

absl::Status Invalid(const std::string& field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status Text(const std::string& v, const std::string& field, size_t max, bool required) {
  if (required && v.empty()) return Invalid(field, "required");
  if (v.size() > max) return Invalid(field, absl::StrCat("longer than ", max, " bytes"));
  return absl::OkStatus();
}

bool IsItemCode(const std::string& code) {
  if (code.empty() || code.size() > 32) return false;
  for (char c : code) {
    if (!(std::isupper(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

absl::Status ValidateImage(const v1::ImageReference& img, const std::string& f) {
  const std::string& uid = img.study_instance_uid();
  if (uid.empty() || uid.size() > 64 || uid.find_first_not_of("0123456789.") != std::string::npos) {
    return Invalid(f + ".study_instance_uid", "a DICOM UID: digits and dots, at most 64");
  }
  if (!img.sha256().empty() &&
      (img.sha256().size() != 64 ||
       img.sha256().find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)) {
    return Invalid(f + ".sha256", "64 hexadecimal characters");
  }
  const std::string& url = img.wado_rs_url();
  if (!url.empty() && url.rfind("https://", 0) != 0 && url.rfind("http://", 0) != 0) {
    return Invalid(f + ".wado_rs_url", "an http(s) URL");
  }
  return Text(url, f + ".wado_rs_url", 1024, false);
}

absl::Status ValidateData(const v1::ResultRecord& r, const ResultLimits& limits) {
  switch (r.kind()) {
    case v1::LAB:
      if (r.lab_values().empty()) return Invalid("result.lab_values", "at least one for LAB");
      break;
    case v1::IMAGING:
      if (r.images().empty()) return Invalid("result.images", "at least one for IMAGING");
      break;
    default:
      break;
  }
  if (static_cast<size_t>(r.lab_values_size()) > limits.max_lab_values) {
    return Invalid("result.lab_values", absl::StrCat("more than ", limits.max_lab_values));
  }
  for (int i = 0; i < r.lab_values_size(); ++i) {
    std::string f = absl::StrCat("result.lab_values[", i, "]");
    RETURN_IF_ERROR(Text(r.lab_values(i).analyte(), f + ".analyte", 128, true));
    RETURN_IF_ERROR(Text(r.lab_values(i).value(), f + ".value", 128, true));
  }
  if (r.ecg().waveform().size() > limits.max_waveform_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("result.ecg.waveform: ", r.ecg().waveform().size(),
                     " bytes exceeds the limit of ", limits.max_waveform_bytes));
  }
  for (int i = 0; i < r.ecg().measurements_size(); ++i) {
    RETURN_IF_ERROR(Text(r.ecg().measurements(i).name(),
                         absl::StrCat("result.ecg.measurements[", i, "].name"), 64, true));
  }
  if (static_cast<size_t>(r.images_size()) > limits.max_images) {
    return Invalid("result.images", absl::StrCat("more than ", limits.max_images));
  }
  for (int i = 0; i < r.images_size(); ++i) {
    RETURN_IF_ERROR(ValidateImage(r.images(i), absl::StrCat("result.images[", i, "]")));
  }
  RETURN_IF_ERROR(Text(r.conclusion(), "result.conclusion", 16 * 1024, false));
  if (r.quality_flags_size() > 16) return Invalid("result.quality_flags", "more than 16");
  for (int i = 0; i < r.quality_flags_size(); ++i) {
    RETURN_IF_ERROR(
        Text(r.quality_flags(i), absl::StrCat("result.quality_flags[", i, "]"), 64, true));
  }
  return absl::OkStatus();
}

}  // namespace

ResultWorkflow::ResultWorkflow(storage::Store& store, const auth::Registry& registry,
                               const recognition::CatalogueHolder& catalogue, const Clock& clock,
                               ResultLimits limits, std::function<void(const std::string&)> notify)
    : store_(store),
      registry_(registry),
      catalogue_(catalogue),
      clock_(clock),
      limits_(limits),
      notify_(std::move(notify)) {}

absl::Status ResultWorkflow::Validate(const auth::Principal& caller, const v1::ResultRecord& r,
                                      Micros now) const {
  size_t size = r.ByteSizeLong();
  if (size > limits_.max_result_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("result: ", size, " bytes exceeds the limit of ", limits_.max_result_bytes));
  }
  RETURN_IF_ERROR(Text(r.client_request_id(), "result.client_request_id", 128, true));
  if (r.kind() == v1::RESULT_KIND_UNSPECIFIED || !v1::ResultKind_IsValid(r.kind())) {
    return Invalid("result.kind", "required (LAB, IMAGING, ECG or PATHOLOGY)");
  }
  if (!r.has_patient()) return Invalid("result.patient", "required");
  RETURN_IF_ERROR(ValidatePatient(r.patient(), "result.patient", now));
  if (r.performing_institution() != caller.id || !caller.IsInstitution()) {
    return absl::PermissionDeniedError(absl::StrCat("result.performing_institution: the caller ",
                                                    caller.id, " publishes only its own"));
  }
  if (!r.addressed_to().empty()) {
    const auth::Principal* to = registry_.Find(r.addressed_to());
    if (to == nullptr || !to->IsInstitution()) {
      return Invalid("result.addressed_to", "not a registered institution");
    }
  }
  if (!IsItemCode(r.item_code())) {
    return Invalid("result.item_code", "required: [A-Z0-9._-], at most 32");
  }
  RETURN_IF_ERROR(Text(r.item_name(), "result.item_name", 128, false));
  RETURN_IF_ERROR(Text(r.code_system(), "result.code_system", 64, false));
  if (!r.has_performed_at()) return Invalid("result.performed_at", "required");
  Micros performed = TimeUtil::TimestampToMicroseconds(r.performed_at());
  if (performed > now + 5LL * 60 * 1000000) return Invalid("result.performed_at", "in the future");
  if (r.has_reported_at() && TimeUtil::TimestampToMicroseconds(r.reported_at()) < performed) {
    return Invalid("result.reported_at", "before performed_at");
  }
  return ValidateData(r, limits_);
}

v1::RecognitionVerdict ResultWorkflow::VerdictOf(const storage::ResultRow& row,
                                                 const recognition::Catalogue& catalogue,
                                                 const std::string& requester, Micros now) const {
  v1::ResultRecord body;
  body.ParseFromString(row.body);
  recognition::ResultFacts facts{row.id, row.item_code, row.publisher, row.performed_at,
                                 body.quality_flags_size() > 0};
  return recognition::Recognize(facts, catalogue, registry_, requester, now);
}

absl::StatusOr<v1::PublishResultResponse> ResultWorkflow::Publish(const auth::Principal& caller,
                                                                  const v1::ResultRecord& in) {
  Micros now = clock_.Now();
  RETURN_IF_ERROR(Validate(caller, in, now));
  v1::ResultRecord r = in;
  r.clear_id();
  r.clear_received_at();
  r.clear_repeat_without_reason();
  r.clear_repeats_result_id();
  r.clear_retest_id();
  std::string digest = MessageDigest(r);
  Micros performed = TimeUtil::TimestampToMicroseconds(r.performed_at());

  storage::ResultRow row;
  row.id = NewId("res", now);
  row.publisher = caller.id;
  row.client_request_id = r.client_request_id();
  row.request_digest = digest;
  row.patient_key = PatientKey(r.patient());
  row.item_code = r.item_code();
  row.kind = r.kind();
  row.performed_at = performed;
  row.received_at = now;

  // Inside the publishing transaction: did the publisher test again although a recognizable
  // result existed? Then it uses the publisher's unused re-test reason, or it is marked.
  std::vector<storage::NewMessage> messages;
  auto decide = [&](const storage::PriorScan& priors,
                    const storage::UnusedRetestLookup& unused_retest,
                    storage::ResultRow& out_row) -> absl::StatusOr<storage::PublishDecision> {
    v1::ResultRecord rec = r;
    storage::PublishDecision decision;
    std::string repeated;  // the newest earlier result the publisher could have recognized
    // The store hands over only results performed before this one, newest first (PriorScan),
    // and reads the row only of those that could be recognized by what its index holds: judged
    // without the row's quality flags, which can only add a reason.
    auto catalogue = catalogue_.Get();
    auto could_be_recognized = [&](const std::string& publisher, Micros performed_at) {
      recognition::ResultFacts facts{"", row.item_code, publisher, performed_at, false};
      return recognition::Recognize(facts, *catalogue, registry_, caller.id, performed)
          .recognizable();
    };
    RETURN_IF_ERROR(priors(could_be_recognized, [&](const storage::ResultRow& prior) {
      if (!VerdictOf(prior, *catalogue, caller.id, performed).recognizable()) return true;
      repeated = prior.id;
      return false;
    }));
    if (!repeated.empty()) {
      rec.set_repeats_result_id(repeated);
      ASSIGN_OR_RETURN(auto retest, unused_retest());
      if (retest) {
        decision.use_retest_id = retest->id;
        rec.set_retest_id(retest->id);
      } else {
        rec.set_repeat_without_reason(true);
        out_row.repeat_without_reason = true;
      }
    }
    rec.set_id(out_row.id);
    *rec.mutable_received_at() = TimeUtil::MicrosecondsToTimestamp(now);
    out_row.body = rec.SerializeAsString();
    if (!rec.addressed_to().empty()) {
      v1::Delivery d;
      *d.mutable_result() = rec;
      decision.messages.push_back({QueueName{rec.addressed_to(), v1::RESULTS}.ToString(),
                                   v1::ROUTINE, out_row.id, d.SerializeAsString()});
    }
    messages = decision.messages;
    return decision;
  };
  storage::AuditScope::Touch(row.id, row.patient_key);
  ASSIGN_OR_RETURN(storage::PublishOutcome stored, store_.PublishResult(row, decide));
  v1::PublishResultResponse out;
  out.set_duplicate(stored.duplicate);
  if (!out.mutable_result()->ParseFromString(stored.row.body)) {
    return absl::DataLossError("stored result is damaged");
  }
  if (!stored.duplicate) {
    spdlog::info("result published id={} by={} item={} kind={} repeat_without_reason={}", row.id,
                 caller.id, row.item_code, v1::ResultKind_Name(r.kind()),
                 stored.row.repeat_without_reason);
    for (const auto& m : messages) notify_(m.queue);
  }
  return out;
}

bool ResultWorkflow::MayRead(const auth::Principal& caller, const v1::ResultRecord& r) const {
  if (caller.id == r.performing_institution() || caller.id == r.addressed_to()) return true;
  const auth::Principal* performer = registry_.Find(r.performing_institution());
  return caller.role == auth::Role::kOperator && performer != nullptr &&
         performer->alliance == caller.alliance;
}

absl::StatusOr<v1::ResultRecord> ResultWorkflow::Get(const auth::Principal& caller,
                                                     const std::string& id) {
  if (id.empty() || id.size() > 64) return Invalid("id", "required, at most 64 characters");
  ASSIGN_OR_RETURN(storage::ResultRow row, store_.GetResult(id));
  storage::AuditScope::Touch(row.id, row.patient_key);
  v1::ResultRecord r;
  if (!r.ParseFromString(row.body)) return absl::DataLossError("stored result is damaged");
  if (!MayRead(caller, r)) {
    return absl::PermissionDeniedError(
        absl::StrCat("id: ", caller.id, " may not read this result"));
  }
  return r;
}

absl::StatusOr<v1::RecognizeResponse> ResultWorkflow::Recognize(const auth::Principal& caller,
                                                                const v1::RecognizeRequest& req) {
  if (!caller.IsInstitution()) {
    return absl::PermissionDeniedError("patient: only an institution requests recognition");
  }
  if (!req.has_patient() || req.patient().value().empty()) {
    return Invalid("patient", "required");
  }
  if (req.item_codes().empty() || req.item_codes_size() > 50) {
    return Invalid("item_codes", "between 1 and 50 required");
  }
  std::vector<std::string> items;
  for (int i = 0; i < req.item_codes_size(); ++i) {
    if (!IsItemCode(req.item_codes(i))) {
      return Invalid(absl::StrCat("item_codes[", i, "]"), "not an item code");
    }
    items.push_back(req.item_codes(i));
  }
  Micros now = clock_.Now();
  auto catalogue = catalogue_.Get();
  storage::AuditScope::Touch("", PatientKey(req.patient()));
  ASSIGN_OR_RETURN(auto rows, store_.ListResults(PatientKey(req.patient()), items, 200));
  v1::RecognizeResponse out;
  out.set_catalogue_version(catalogue->version());
  for (const storage::ResultRow& row : rows)
    *out.add_verdicts() = VerdictOf(row, *catalogue, caller.id, now);
  spdlog::info("recognition query by={} items={} results={}", caller.id, items.size(), rows.size());
  return out;
}

absl::StatusOr<v1::RecordRetestResponse> ResultWorkflow::RecordRetest(const auth::Principal& caller,
                                                                      const v1::Retest& in) {
  if (!caller.IsInstitution()) {
    return absl::PermissionDeniedError("retest: only an institution records a re-test");
  }
  RETURN_IF_ERROR(Text(in.client_request_id(), "retest.client_request_id", 128, true));
  if (!in.has_patient() || in.patient().value().empty() ||
      in.patient().type() == v1::PATIENT_ID_TYPE_UNSPECIFIED) {
    return Invalid("retest.patient", "required (type and value)");
  }
  if (!IsItemCode(in.item_code())) return Invalid("retest.item_code", "required item code");
  if (in.reason() == v1::RETEST_REASON_UNSPECIFIED || !v1::RetestReason_IsValid(in.reason())) {
    return Invalid("retest.reason", "required (a coded reason)");
  }
  RETURN_IF_ERROR(Text(in.text(), "retest.text", 2000, in.reason() == v1::RETEST_OTHER));
  if (!in.has_doctor() || in.doctor().id().empty() || in.doctor().name().empty()) {
    return Invalid("retest.doctor", "id and name required");
  }
  if (!in.prior_result_id().empty()) {
    auto prior = store_.GetResult(in.prior_result_id());
    if (absl::IsNotFound(prior.status())) {
      return Invalid("retest.prior_result_id", "no such result");
    }
    if (!prior.ok()) return prior.status();
  }
  Micros now = clock_.Now();
  v1::Retest r = in;
  r.set_id(NewId("rt", now));
  r.set_institution(caller.id);
  *r.mutable_recorded_at() = TimeUtil::MicrosecondsToTimestamp(now);
  r.set_catalogue_version(catalogue_.Get()->version());
  r.clear_used_by_result_id();
  storage::RetestRow row{
      r.id(), caller.id, r.client_request_id(), PatientKey(r.patient()), r.item_code(), r.reason(),
      now,    "",        r.SerializeAsString()};
  storage::AuditScope::Touch(row.id, row.patient_key);
  ASSIGN_OR_RETURN(auto stored, store_.RecordRetest(row));
  v1::RecordRetestResponse out;
  out.set_duplicate(stored.duplicate);
  out.mutable_retest()->ParseFromString(stored.row.body);
  out.mutable_retest()->set_used_by_result_id(stored.row.used_by_result_id);
  return out;
}

absl::StatusOr<v1::ListResultsResponse> ResultWorkflow::List(const auth::Principal& caller,
                                                             const v1::ListResultsRequest& req) {
  if (!req.has_patient() || req.patient().value().empty()) return Invalid("patient", "required");
  if (req.limit() > 500) return Invalid("limit", "at most 500");
  storage::AuditScope::Touch("", PatientKey(req.patient()));
  ASSIGN_OR_RETURN(auto rows, store_.ListResults(PatientKey(req.patient()), {},
                                                 req.limit() == 0 ? 50 : req.limit()));
  v1::ListResultsResponse out;
  for (const storage::ResultRow& row : rows) {
    v1::ResultRecord r;
    if (!r.ParseFromString(row.body)) return absl::DataLossError("stored result is damaged");
    if (MayRead(caller, r)) *out.add_results() = std::move(r);
  }
  return out;
}

absl::StatusOr<v1::RetestSummaryResponse> ResultWorkflow::Summary(
    const auth::Principal& caller, const v1::RetestSummaryRequest& req) {
  Micros from = req.has_from() ? TimeUtil::TimestampToMicroseconds(req.from()) : 0;
  Micros to = req.has_to() ? TimeUtil::TimestampToMicroseconds(req.to()) : 0;
  ASSIGN_OR_RETURN(auto rows, store_.CountRetests(from, to));
  v1::RetestSummaryResponse out;
  for (const auto& row : rows) {
    const auth::Principal* who = registry_.Find(row.institution);
    bool visible = caller.id == row.institution ||
                   (!caller.IsInstitution() && who != nullptr && who->alliance == caller.alliance);
    if (!visible) continue;
    auto* c = out.add_counts();
    c->set_institution(row.institution);
    c->set_reason(static_cast<v1::RetestReason>(row.reason));
    c->set_count(row.count);
  }
  return out;
}

absl::StatusOr<std::vector<v1::RecognitionVerdict>> ResultWorkflow::VerdictsFor(
    const v1::Patient& patient, const google::protobuf::RepeatedPtrField<std::string>& result_ids,
    const std::string& receiver, const std::string& field) {
  std::vector<v1::RecognitionVerdict> out;
  Micros now = clock_.Now();
  auto catalogue = catalogue_.Get();
  std::string key = PatientKey(patient);
  for (int i = 0; i < result_ids.size(); ++i) {
    std::string at = absl::StrCat(field, "[", i, "]");
    auto row = store_.GetResult(result_ids.Get(i));
    if (absl::IsNotFound(row.status())) return Invalid(at, "no such result");
    if (!row.ok()) return row.status();
    if (row->patient_key != key) return Invalid(at, "belongs to another patient");
    out.push_back(VerdictOf(*row, *catalogue, receiver, now));
  }
  return out;
}

}  // namespace refbroker::domain

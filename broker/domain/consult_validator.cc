#include "broker/domain/consult_validator.h"

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/domain/referral_validator.h"
#include "google/protobuf/util/time_util.h"

namespace refbroker::domain {
namespace {

namespace v1 = refbroker::v1;
using google::protobuf::util::TimeUtil;

absl::Status Invalid(const std::string& field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status Text(const std::string& value, const std::string& field, size_t max, bool required) {
  if (required && value.empty()) return Invalid(field, "required");
  if (value.size() > max) return Invalid(field, absl::StrCat("longer than ", max, " bytes"));
  return absl::OkStatus();
}

absl::Status Doctor(const v1::Practitioner& d, bool present, const std::string& field) {
  if (!present) return Invalid(field, "required");
  RETURN_IF_ERROR(Text(d.id(), field + ".id", 128, true));
  return Text(d.name(), field + ".name", 128, true);
}

absl::Status Ids(const google::protobuf::RepeatedPtrField<std::string>& ids,
                 const std::string& field, int max) {
  if (ids.size() > max) return Invalid(field, absl::StrCat("more than ", max));
  for (int i = 0; i < ids.size(); ++i) {
    RETURN_IF_ERROR(Text(ids.Get(i), absl::StrCat(field, "[", i, "]"), 64, true));
  }
  return absl::OkStatus();
}

absl::Status Priority(v1::Priority p, const std::string& field) {
  if (p == v1::PRIORITY_UNSPECIFIED || !v1::Priority_IsValid(p)) return Invalid(field, "required");
  return absl::OkStatus();
}

}  // namespace

bool IsReadingService(v1::ConsultServiceType s) {
  return s == v1::ECG_READING || s == v1::IMAGING_READING || s == v1::PATHOLOGY_READING;
}

absl::Status ValidateConsultRequest(const v1::Consult& c, Micros now, size_t max_bytes) {
  if (c.ByteSizeLong() > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("consult: ", c.ByteSizeLong(), " bytes, more than the limit of ", max_bytes));
  }
  RETURN_IF_ERROR(Text(c.client_request_id(), "consult.client_request_id", 128, true));
  RETURN_IF_ERROR(Priority(c.priority(), "consult.priority"));
  if (!c.has_patient()) return Invalid("consult.patient", "required");
  RETURN_IF_ERROR(ValidatePatient(c.patient(), "consult.patient", now));
  if (!c.has_from()) return Invalid("consult.from", "required");
  RETURN_IF_ERROR(Text(c.from().institution(), "consult.from.institution", 18, true));
  RETURN_IF_ERROR(Text(c.from().department(), "consult.from.department", 128, false));
  RETURN_IF_ERROR(Doctor(c.from().doctor(), c.from().has_doctor(), "consult.from.doctor"));
  if (!c.has_target()) return Invalid("consult.target", "required");
  RETURN_IF_ERROR(Text(c.target().institution(), "consult.target.institution", 18, true));
  if (c.target().service() == v1::CONSULT_SERVICE_UNSPECIFIED ||
      !v1::ConsultServiceType_IsValid(c.target().service())) {
    return Invalid("consult.target.service", "required");
  }
  RETURN_IF_ERROR(Text(c.target().specialty(), "consult.target.specialty", 64,
                       c.target().service() == v1::SPECIALTY_OPINION));
  RETURN_IF_ERROR(Text(c.question(), "consult.question", 4000, true));
  RETURN_IF_ERROR(Text(c.clinical_summary(), "consult.clinical_summary", 16 * 1024, false));
  RETURN_IF_ERROR(Ids(c.attached_result_ids(), "consult.attached_result_ids", 50));
  return ValidateConsent(c.consent(), c.has_consent(), "consult.consent", now);
}

absl::Status ValidateConsultTransition(const v1::TransitionConsultRequest& r, Micros now) {
  RETURN_IF_ERROR(Text(r.consult_id(), "consult_id", 64, true));
  RETURN_IF_ERROR(Text(r.client_request_id(), "client_request_id", 128, true));
  RETURN_IF_ERROR(Doctor(r.doctor(), r.has_doctor(), "doctor"));
  switch (r.action_case()) {
    case v1::TransitionConsultRequest::kAccept:
      return Text(r.accept().note(), "accept.note", 2000, false);
    case v1::TransitionConsultRequest::kDecline:
      if (r.decline().reason() == v1::DECLINE_REASON_UNSPECIFIED ||
          !v1::DeclineReason_IsValid(r.decline().reason())) {
        return Invalid("decline.reason", "required (a coded reason)");
      }
      return Text(r.decline().text(), "decline.text", 2000,
                  r.decline().reason() == v1::DECLINE_OTHER);
    case v1::TransitionConsultRequest::kSchedule: {
      const v1::ConsultSchedule& s = r.schedule();
      if (!s.has_session_at()) return Invalid("schedule.session_at", "required");
      if (TimeUtil::TimestampToMicroseconds(s.session_at()) < now - 5LL * 60 * 1000000) {
        return Invalid("schedule.session_at", "in the past");
      }
      RETURN_IF_ERROR(Text(s.meeting_url(), "schedule.meeting_url", 1024, true));
      if (s.meeting_url().rfind("https://", 0) != 0) {
        return Invalid("schedule.meeting_url", "must be an https:// link");
      }
      if (s.duration_minutes() > 24 * 60) return Invalid("schedule.duration_minutes", "too long");
      return absl::OkStatus();
    }
    case v1::TransitionConsultRequest::kCancel:
      return Text(r.cancel().reason(), "cancel.reason", 2000, true);
    default:
      return Invalid("action", "one of accept, decline, schedule, cancel is required");
  }
}

absl::Status ValidateReportRequest(const v1::IssueReportRequest& r) {
  RETURN_IF_ERROR(Text(r.consult_id(), "consult_id", 64, true));
  RETURN_IF_ERROR(Text(r.client_request_id(), "client_request_id", 128, true));
  if (!r.has_content()) return Invalid("content", "required");
  const v1::ReportContent& c = r.content();
  RETURN_IF_ERROR(Text(c.findings(), "content.findings", 64 * 1024, true));
  RETURN_IF_ERROR(Text(c.opinion(), "content.opinion", 16 * 1024, true));
  RETURN_IF_ERROR(Text(c.recommendations(), "content.recommendations", 16 * 1024, false));
  RETURN_IF_ERROR(Doctor(c.consultant(), c.has_consultant(), "content.consultant"));
  return Text(c.addendum_to(), "content.addendum_to", 64, false);
}

absl::Status ValidateThreadMessage(const v1::ConsultMessage& m) {
  RETURN_IF_ERROR(Text(m.consult_id(), "message.consult_id", 64, true));
  RETURN_IF_ERROR(Text(m.client_request_id(), "message.client_request_id", 128, true));
  RETURN_IF_ERROR(Doctor(m.author().doctor(), m.author().has_doctor(), "message.author.doctor"));
  RETURN_IF_ERROR(Text(m.text(), "message.text", 16 * 1024, false));
  RETURN_IF_ERROR(Ids(m.result_ids(), "message.result_ids", 20));
  if (m.text().empty() && m.result_ids().empty()) {
    return Invalid("message.text", "text or result_ids required");
  }
  return absl::OkStatus();
}

absl::Status ValidateConversion(const v1::ConvertToReferralRequest& r) {
  RETURN_IF_ERROR(Text(r.consult_id(), "consult_id", 64, true));
  RETURN_IF_ERROR(Text(r.client_request_id(), "client_request_id", 128, true));
  RETURN_IF_ERROR(Doctor(r.doctor(), r.has_doctor(), "doctor"));
  RETURN_IF_ERROR(Text(r.reason(), "reason", 2000, true));
  RETURN_IF_ERROR(Text(r.department(), "department", 128, true));
  if (r.diagnoses().empty()) return Invalid("diagnoses", "at least one required");
  return Text(r.to_institution(), "to_institution", 18, false);
}

}  // namespace refbroker::domain

#include "broker/domain/referral_validator.h"

#include <cctype>
#include <ctime>
#include <string>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/domain/identifiers.h"

namespace refbroker::domain {
namespace {

using refbroker::v1::Referral;

absl::Status Invalid(const std::string& field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("referral.", field, ": ", why));
}

absl::Status RequireText(const std::string& value, const std::string& field, size_t max) {
  if (value.empty()) return Invalid(field, "required");
  if (value.size() > max) return Invalid(field, absl::StrCat("longer than ", max, " bytes"));
  return absl::OkStatus();
}

absl::Status OptionalText(const std::string& value, const std::string& field, size_t max) {
  if (value.size() > max) return Invalid(field, absl::StrCat("longer than ", max, " bytes"));
  return absl::OkStatus();
}

// ICD-10: a letter, two digits, optionally "." and 1-4 more characters (national clinical
// edition extensions such as "I21.900x001" are longer, so allow up to 8 after the dot).
bool LooksLikeIcd10(const std::string& code) {
  if (code.size() < 3 || !std::isupper(static_cast<unsigned char>(code[0])) ||
      !std::isdigit(static_cast<unsigned char>(code[1])) ||
      !std::isalnum(static_cast<unsigned char>(code[2]))) {
    return false;
  }
  if (code.size() == 3) return true;
  if (code[3] != '.' || code.size() < 5 || code.size() > 12) return false;
  for (size_t i = 4; i < code.size(); ++i) {
    if (!std::isalnum(static_cast<unsigned char>(code[i]))) return false;
  }
  return true;
}

}  // namespace

absl::Status ValidateConsent(const refbroker::v1::Consent& c, bool present,
                             const std::string& field, Micros now) {
  auto invalid = [&](const std::string& sub, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, sub, ": ", why));
  };
  if (!present || !c.given()) return invalid(".given", "the patient's consent is required");
  if (!c.has_obtained_at()) return invalid(".obtained_at", "required");
  Micros at = c.obtained_at().seconds() * 1000000;
  if (at > now + 5LL * 60 * 1000000) return invalid(".obtained_at", "in the future");
  if (c.recorded_by().size() > 128) return invalid(".recorded_by", "longer than 128 bytes");
  if (c.document_ref().size() > 512) return invalid(".document_ref", "longer than 512 bytes");
  return absl::OkStatus();
}

absl::Status ValidatePatient(const refbroker::v1::Patient& p, const std::string& field, Micros now,
                             size_t max_identifiers) {
  auto invalid = [&](const std::string& sub, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, sub, ": ", why));
  };
  auto text = [&](const std::string& value, const std::string& sub, size_t max,
                  bool required) -> absl::Status {
    if (required && value.empty()) return invalid(sub, "required");
    if (value.size() > max) return invalid(sub, absl::StrCat("longer than ", max, " bytes"));
    return absl::OkStatus();
  };
  if (p.identifiers().empty()) return invalid(".identifiers", "at least one required");
  if (static_cast<size_t>(p.identifiers_size()) > max_identifiers) {
    return invalid(".identifiers", absl::StrCat("more than ", max_identifiers));
  }
  std::string resident_birth_date;
  for (int i = 0; i < p.identifiers_size(); ++i) {
    const auto& id = p.identifiers(i);
    std::string f = absl::StrCat(".identifiers[", i, "]");
    if (id.type() == refbroker::v1::PATIENT_ID_TYPE_UNSPECIFIED ||
        !refbroker::v1::PatientIdType_IsValid(id.type())) {
      return invalid(f + ".type", "required");
    }
    RETURN_IF_ERROR(text(id.value(), f + ".value", 128, true));
    RETURN_IF_ERROR(text(id.issuer(), f + ".issuer", 128, false));
    if (id.type() == refbroker::v1::RESIDENT_ID) {
      std::time_t t = static_cast<std::time_t>(now / 1000000);
      std::tm tm{};
      gmtime_r(&t, &tm);
      if (auto s = ValidateResidentId(id.value(), tm.tm_year + 1900); !s.ok()) {
        return invalid(f + ".value", s.message());
      }
      resident_birth_date = ResidentIdBirthDate(id.value());
    }
    if (id.type() == refbroker::v1::HOSPITAL_MRN && id.issuer().empty()) {
      return invalid(f + ".issuer", "required for HOSPITAL_MRN");
    }
  }
  RETURN_IF_ERROR(text(p.name(), ".name", 64, true));
  if (!refbroker::v1::Sex_IsValid(p.sex())) return invalid(".sex", "unknown value");
  if (!p.phone().empty()) {
    bool ok = p.phone().size() >= 7 && p.phone().size() <= 20;
    for (char c : p.phone())
      ok = ok && (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == ' ');
    if (!ok) return invalid(".phone", "7 to 20 digits, '+', '-' or spaces");
  }
  if (!p.birth_date().empty()) {
    if (!IsCalendarDate(p.birth_date())) return invalid(".birth_date", "not YYYY-MM-DD");
    if (!resident_birth_date.empty() && resident_birth_date != p.birth_date()) {
      return invalid(".birth_date", "does not match the resident ID");
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status ValidateSource(const Referral& r, const ReferralLimits& limits) {
  if (!r.has_from()) return Invalid("from", "required");
  const auto& from = r.from();
  if (from.institution().empty()) return Invalid("from.institution", "required");
  if (auto s = ValidateCreditCode(from.institution()); !s.ok()) {
    return Invalid("from.institution", s.message());
  }
  RETURN_IF_ERROR(RequireText(from.department(), "from.department", limits.max_short_text));
  if (!from.has_doctor()) return Invalid("from.doctor", "required");
  RETURN_IF_ERROR(RequireText(from.doctor().id(), "from.doctor.id", limits.max_short_text));
  RETURN_IF_ERROR(RequireText(from.doctor().name(), "from.doctor.name", limits.max_short_text));
  return absl::OkStatus();
}

absl::Status ValidateClinical(const Referral& r, Micros now, const ReferralLimits& limits) {
  RETURN_IF_ERROR(RequireText(r.reason(), "reason", limits.max_reason));
  if (r.diagnoses().empty()) return Invalid("diagnoses", "at least one required");
  if (static_cast<size_t>(r.diagnoses_size()) > limits.max_diagnoses) {
    return Invalid("diagnoses", absl::StrCat("more than ", limits.max_diagnoses));
  }
  for (int i = 0; i < r.diagnoses_size(); ++i) {
    const auto& d = r.diagnoses(i);
    std::string f = absl::StrCat("diagnoses[", i, "]");
    RETURN_IF_ERROR(RequireText(d.code(), f + ".code", limits.max_short_text));
    bool icd10 = d.code_system().empty() || d.code_system().rfind("ICD-10", 0) == 0;
    if (icd10 && !LooksLikeIcd10(d.code())) return Invalid(f + ".code", "not an ICD-10 code");
    RETURN_IF_ERROR(RequireText(d.name(), f + ".name", limits.max_short_text));
    RETURN_IF_ERROR(OptionalText(d.code_system(), f + ".code_system", limits.max_short_text));
  }
  RETURN_IF_ERROR(
      OptionalText(r.clinical_summary(), "clinical_summary", limits.max_clinical_summary));
  RETURN_IF_ERROR(ValidateConsent(r.consent(), r.has_consent(), "referral.consent", now));
  if (static_cast<size_t>(r.attached_result_ids_size()) > limits.max_attachments) {
    return Invalid("attached_result_ids", absl::StrCat("more than ", limits.max_attachments));
  }
  for (int i = 0; i < r.attached_result_ids_size(); ++i) {
    RETURN_IF_ERROR(RequireText(r.attached_result_ids(i),
                                absl::StrCat("attached_result_ids[", i, "]"),
                                limits.max_short_text));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateReferralSubmission(const Referral& r, Micros now,
                                        const ReferralLimits& limits) {
  size_t size = r.ByteSizeLong();
  if (size > limits.max_serialized_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "referral: ", size, " bytes exceeds the limit of ", limits.max_serialized_bytes));
  }
  RETURN_IF_ERROR(RequireText(r.client_request_id(), "client_request_id", limits.max_short_text));
  if (r.direction() == refbroker::v1::DIRECTION_UNSPECIFIED ||
      !refbroker::v1::Direction_IsValid(r.direction())) {
    return Invalid("direction", "required (UP or DOWN)");
  }
  if (r.priority() == refbroker::v1::PRIORITY_UNSPECIFIED ||
      !refbroker::v1::Priority_IsValid(r.priority())) {
    return Invalid("priority", "required (EMERGENCY, URGENT or ROUTINE)");
  }
  if (!r.has_patient()) return Invalid("patient", "required");
  RETURN_IF_ERROR(ValidatePatient(r.patient(), "referral.patient", now, limits.max_identifiers));
  RETURN_IF_ERROR(ValidateSource(r, limits));
  if (!r.to_institution().empty()) {
    if (auto s = ValidateCreditCode(r.to_institution()); !s.ok()) {
      return Invalid("to_institution", s.message());
    }
  }
  RETURN_IF_ERROR(ValidateClinical(r, now, limits));
  RETURN_IF_ERROR(OptionalText(r.specialty(), "specialty", 64));
  if (r.direction() == refbroker::v1::UP) {
    if (!r.continues_referral_id().empty()) {
      return Invalid("continues_referral_id", "only a DOWN referral continues another");
    }
    if (!r.follow_up_plan().empty()) return Invalid("follow_up_plan", "only for a DOWN referral");
    if (r.down_reason() != refbroker::v1::DOWN_REASON_UNSPECIFIED) {
      return Invalid("down_reason", "only for a DOWN referral");
    }
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(
      RequireText(r.continues_referral_id(), "continues_referral_id", limits.max_short_text));
  if (r.down_reason() == refbroker::v1::DOWN_REASON_UNSPECIFIED ||
      !refbroker::v1::DownReason_IsValid(r.down_reason())) {
    return Invalid("down_reason", "required for a DOWN referral");
  }
  RETURN_IF_ERROR(RequireText(r.follow_up_plan(), "follow_up_plan", limits.max_clinical_summary));
  return absl::OkStatus();
}

}  // namespace refbroker::domain

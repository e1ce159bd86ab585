#pragma once
// Validation of a referral submission. Every error is INVALID_ARGUMENT (or RESOURCE_EXHAUSTED
// for an oversize referral) whose message starts with the field path, e.g.
// "referral.patient.identifiers[0].value: resident ID checksum does not match (GB 11643)".
// Messages never echo patient data. Pure function, thread-safe.

#include <cstddef>

#include "absl/status/status.h"
#include "broker/common/clock.h"
#include "refbroker/v1/referral.pb.h"

namespace refbroker::domain {

struct ReferralLimits {
  size_t max_serialized_bytes = 256 * 1024;
  size_t max_reason = 2000;
  size_t max_clinical_summary = 16 * 1024;
  size_t max_diagnoses = 20;
  size_t max_attachments = 50;
  size_t max_identifiers = 8;
  size_t max_short_text = 128;  // ids, department, names of doctors
  size_t max_patient_name = 64;
};

// Checks a patient's identifiers ((type, value, issuer); GB 11643 for resident IDs), name, sex
// and birth date. Errors start with `field` (e.g. "referral.patient.identifiers[0].value: ...").
absl::Status ValidatePatient(const refbroker::v1::Patient& patient, const std::string& field,
                             Micros now, size_t max_identifiers = 8);

// Checks the patient's separate consent to the transfer (PIPL art. 29): given, with the time it
// was obtained (not in the future). Errors start with `field` (e.g. "referral.consent.given").
absl::Status ValidateConsent(const refbroker::v1::Consent& consent, bool present,
                             const std::string& field, Micros now);

// Checks what a sender must provide (DESIGN.md "Referral"). Fields the broker sets (id, state,
// times) are ignored. `now` is used to reject consent times in the future.
absl::Status ValidateReferralSubmission(const refbroker::v1::Referral& referral, Micros now,
                                        const ReferralLimits& limits = ReferralLimits());

}  // namespace refbroker::domain

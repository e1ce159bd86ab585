#include "broker/domain/referral_validator.h"

#include <gtest/gtest.h>

#include <functional>

#include "broker/domain/identifiers.h"
#include "client/sim/synthetic_referral.h"

namespace refbroker::domain {
namespace {

using refbroker::v1::Referral;

constexpr char kClinic[] = "124117234175811018";
constexpr Micros kNow = 1795000000LL * 1000000;  // 2026-11

Referral Valid() {
  refsim::SyntheticReferrals gen(42);
  Referral r = gen.Make(kClinic, "", refbroker::v1::ROUTINE, "req-1");
  r.mutable_consent()->mutable_obtained_at()->set_seconds(kNow / 1000000 - 60);
  return r;
}

struct BadCase {
  const char* name;
  std::function<void(Referral&)> mutate;
  absl::StatusCode code;
  const char* field;  // the message must start with "<field>:"
};

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class ReferralValidatorTable : public testing::TestWithParam<BadCase> {};

TEST(ReferralValidator, AcceptsAValidReferral) {
  EXPECT_TRUE(ValidateReferralSubmission(Valid(), kNow).ok());
}

TEST_P(ReferralValidatorTable, RejectsWithCodeAndField) {
  const BadCase& c = GetParam();
  Referral r = Valid();
  c.mutate(r);
  absl::Status s = ValidateReferralSubmission(r, kNow);
  EXPECT_EQ(s.code(), c.code) << s;
  EXPECT_EQ(std::string(s.message()).rfind(std::string(c.field) + ":", 0), 0u)
      << "message should start with the field: " << s.message();
}

std::string WithCheck(std::string first17) {
  first17.push_back(ResidentIdCheckChar(first17));
  return first17;
}

const BadCase kBadCases[] = {
    {"NoRequestId", [](Referral& r) { r.clear_client_request_id(); },
     absl::StatusCode::kInvalidArgument, "referral.client_request_id"},
    {"LongRequestId", [](Referral& r) { r.set_client_request_id(std::string(200, 'a')); },
     absl::StatusCode::kInvalidArgument, "referral.client_request_id"},
    {"NoDirection", [](Referral& r) { r.clear_direction(); }, absl::StatusCode::kInvalidArgument,
     "referral.direction"},
    {"NoPriority", [](Referral& r) { r.clear_priority(); }, absl::StatusCode::kInvalidArgument,
     "referral.priority"},
    {"UnknownPriority",
     [](Referral& r) { r.set_priority(static_cast<refbroker::v1::Priority>(9)); },
     absl::StatusCode::kInvalidArgument, "referral.priority"},
    {"NoPatient", [](Referral& r) { r.clear_patient(); }, absl::StatusCode::kInvalidArgument,
     "referral.patient"},
    {"NoIdentifiers", [](Referral& r) { r.mutable_patient()->clear_identifiers(); },
     absl::StatusCode::kInvalidArgument, "referral.patient.identifiers"},
    {"IdentifierWithoutType",
     [](Referral& r) { r.mutable_patient()->mutable_identifiers(0)->clear_type(); },
     absl::StatusCode::kInvalidArgument, "referral.patient.identifiers[0].type"},
    {"ResidentIdBadChecksum",
     [](Referral& r) {
       std::string v = r.patient().identifiers(0).value();
       v[17] = v[17] == '1' ? '2' : '1';
       r.mutable_patient()->mutable_identifiers(0)->set_value(v);
     },
     absl::StatusCode::kInvalidArgument, "referral.patient.identifiers[0].value"},
    {"ResidentIdBadDate",
     [](Referral& r) {
       r.mutable_patient()->mutable_identifiers(0)->set_value(WithCheck("41172319801332001"));
     },
     absl::StatusCode::kInvalidArgument, "referral.patient.identifiers[0].value"},
    {"MrnWithoutIssuer",
     [](Referral& r) {
       auto* id = r.mutable_patient()->add_identifiers();
       id->set_type(refbroker::v1::HOSPITAL_MRN);
       id->set_value("MRN-1");
     },
     absl::StatusCode::kInvalidArgument, "referral.patient.identifiers[1].issuer"},
    {"NoPatientName", [](Referral& r) { r.mutable_patient()->clear_name(); },
     absl::StatusCode::kInvalidArgument, "referral.patient.name"},
    {"BirthDateDisagreesWithResidentId",
     [](Referral& r) { r.mutable_patient()->set_birth_date("1901-01-01"); },
     absl::StatusCode::kInvalidArgument, "referral.patient.birth_date"},
    {"BirthDateMalformed", [](Referral& r) { r.mutable_patient()->set_birth_date("1990/01/01"); },
     absl::StatusCode::kInvalidArgument, "referral.patient.birth_date"},
    {"NoSource", [](Referral& r) { r.clear_from(); }, absl::StatusCode::kInvalidArgument,
     "referral.from"},
    {"SourceBadCreditCode",
     [](Referral& r) { r.mutable_from()->set_institution("124117234175811019"); },
     absl::StatusCode::kInvalidArgument, "referral.from.institution"},
    {"NoDepartment", [](Referral& r) { r.mutable_from()->clear_department(); },
     absl::StatusCode::kInvalidArgument, "referral.from.department"},
    {"NoDoctor", [](Referral& r) { r.mutable_from()->clear_doctor(); },
     absl::StatusCode::kInvalidArgument, "referral.from.doctor"},
    {"NoDoctorName", [](Referral& r) { r.mutable_from()->mutable_doctor()->clear_name(); },
     absl::StatusCode::kInvalidArgument, "referral.from.doctor.name"},
    {"ReceiverBadCreditCode", [](Referral& r) { r.set_to_institution("12411723417580001C"); },
     absl::StatusCode::kInvalidArgument, "referral.to_institution"},
    {"NoReason", [](Referral& r) { r.clear_reason(); }, absl::StatusCode::kInvalidArgument,
     "referral.reason"},
    {"ReasonTooLong", [](Referral& r) { r.set_reason(std::string(2001, 'x')); },
     absl::StatusCode::kInvalidArgument, "referral.reason"},
    {"NoDiagnoses", [](Referral& r) { r.clear_diagnoses(); }, absl::StatusCode::kInvalidArgument,
     "referral.diagnoses"},
    {"DiagnosisNotIcd10", [](Referral& r) { r.mutable_diagnoses(0)->set_code("heart attack"); },
     absl::StatusCode::kInvalidArgument, "referral.diagnoses[0].code"},
    {"DiagnosisWithoutName", [](Referral& r) { r.mutable_diagnoses(0)->clear_name(); },
     absl::StatusCode::kInvalidArgument, "referral.diagnoses[0].name"},
    {"SummaryTooLong", [](Referral& r) { r.set_clinical_summary(std::string(17 * 1024, 'x')); },
     absl::StatusCode::kInvalidArgument, "referral.clinical_summary"},
    {"NoConsent", [](Referral& r) { r.clear_consent(); }, absl::StatusCode::kInvalidArgument,
     "referral.consent.given"},
    {"ConsentRefused", [](Referral& r) { r.mutable_consent()->set_given(false); },
     absl::StatusCode::kInvalidArgument, "referral.consent.given"},
    {"ConsentWithoutTime", [](Referral& r) { r.mutable_consent()->clear_obtained_at(); },
     absl::StatusCode::kInvalidArgument, "referral.consent.obtained_at"},
    {"ConsentInTheFuture",
     [](Referral& r) {
       r.mutable_consent()->mutable_obtained_at()->set_seconds(kNow / 1000000 + 86400);
     },
     absl::StatusCode::kInvalidArgument, "referral.consent.obtained_at"},
    {"TooManyAttachments",
     [](Referral& r) {
       for (int i = 0; i < 51; ++i) r.add_attached_result_ids("res-" + std::to_string(i));
     },
     absl::StatusCode::kInvalidArgument, "referral.attached_result_ids"},
    {"UpReferralContinuingAnother", [](Referral& r) { r.set_continues_referral_id("ref-x"); },
     absl::StatusCode::kInvalidArgument, "referral.continues_referral_id"},
    {"Oversize", [](Referral& r) { r.set_clinical_summary(std::string(300 * 1024, 'x')); },
     absl::StatusCode::kResourceExhausted, "referral"},
};

INSTANTIATE_TEST_SUITE_P(BadInput, ReferralValidatorTable, testing::ValuesIn(kBadCases),
                         [](const testing::TestParamInfo<BadCase>& param_info) {
                           return std::string(param_info.param.name);
                         });

TEST(ReferralValidator, ErrorMessagesNeverEchoPatientIdentity) {
  Referral r = Valid();
  std::string v = r.patient().identifiers(0).value();
  v[17] = v[17] == '1' ? '2' : '1';
  r.mutable_patient()->mutable_identifiers(0)->set_value(v);
  absl::Status s = ValidateReferralSubmission(r, kNow);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.message()).find(v.substr(0, 10)), std::string::npos);
}

}  // namespace
}  // namespace refbroker::domain

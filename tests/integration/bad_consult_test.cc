// Bad consult input through the real broker: each missing or malformed field gets its status
// code with the field named at the start of the message, and nothing is stored.

#include <gtest/gtest.h>

#include <functional>

#include "client/refclient/consult_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/shared_broker_test.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

struct BadConsult {
  const char* name;
  std::function<void(v1::Consult&)> mutate;
  absl::StatusCode code;
  const char* field;
};

void PrintTo(const BadConsult& c, std::ostream* os) { *os << c.name; }

const BadConsult kCases[] = {
    {"NoRequestId", [](auto& c) { c.clear_client_request_id(); },
     absl::StatusCode::kInvalidArgument, "consult.client_request_id"},
    {"NoPriority", [](auto& c) { c.clear_priority(); }, absl::StatusCode::kInvalidArgument,
     "consult.priority"},
    {"NoPatient", [](auto& c) { c.clear_patient(); }, absl::StatusCode::kInvalidArgument,
     "consult.patient"},
    {"ResidentIdChecksum",
     [](auto& c) {
       auto* id = c.mutable_patient()->mutable_identifiers(0);
       std::string v = id->value();
       v[17] = v[17] == '3' ? '4' : '3';
       id->set_value(v);
     },
     absl::StatusCode::kInvalidArgument, "consult.patient.identifiers[0].value"},
    {"NoDoctor", [](auto& c) { c.mutable_from()->clear_doctor(); },
     absl::StatusCode::kInvalidArgument, "consult.from.doctor"},
    {"AsAnotherInstitution", [](auto& c) { c.mutable_from()->set_institution(kGuhuai); },
     absl::StatusCode::kPermissionDenied, "consult.from.institution"},
    {"NoTarget", [](auto& c) { c.clear_target(); }, absl::StatusCode::kInvalidArgument,
     "consult.target"},
    {"UnknownTarget", [](auto& c) { c.mutable_target()->set_institution("12411723MB0A1009XX"); },
     absl::StatusCode::kNotFound, "consult.target.institution"},
    {"NoService", [](auto& c) { c.mutable_target()->clear_service(); },
     absl::StatusCode::kInvalidArgument, "consult.target.service"},
    {"ServiceNotOffered", [](auto& c) { c.mutable_target()->set_service(v1::PATHOLOGY_READING); },
     absl::StatusCode::kFailedPrecondition, "consult.target.service"},
    {"SpecialtyOpinionWithoutSpecialty",
     [](auto& c) {
       c.mutable_target()->set_institution(kPeopleHospital);
       c.mutable_target()->set_service(v1::SPECIALTY_OPINION);
     },
     absl::StatusCode::kInvalidArgument, "consult.target.specialty"},
    {"NoQuestion", [](auto& c) { c.clear_question(); }, absl::StatusCode::kInvalidArgument,
     "consult.question"},
    {"QuestionTooLong", [](auto& c) { c.set_question(std::string(5000, 'x')); },
     absl::StatusCode::kInvalidArgument, "consult.question"},
    {"NoConsent", [](auto& c) { c.clear_consent(); }, absl::StatusCode::kInvalidArgument,
     "consult.consent.given"},
    {"ConsentInTheFuture",
     [](auto& c) {
       c.mutable_consent()->mutable_obtained_at()->set_seconds(time(nullptr) + 86400);
     },
     absl::StatusCode::kInvalidArgument, "consult.consent.obtained_at"},
    {"UnknownAttachment", [](auto& c) { c.add_attached_result_ids("res-does-not-exist"); },
     absl::StatusCode::kInvalidArgument, "consult.attached_result_ids[0]"},
    {"Oversize", [](auto& c) { c.set_clinical_summary(std::string(300 * 1024, 'x')); },
     absl::StatusCode::kResourceExhausted, "consult"},
};

using BadConsultTest = SharedBrokerTest<BadConsult>;

TEST_P(BadConsultTest, IsRejectedWithTheFieldNamedAndNothingStored) {
  const BadConsult& c = GetParam();
  auto clinic = ConnectAs(broker_->address(), "xiyangdian-thc");
  refclient::RetryPolicy once;
  once.max_attempts = 1;
  v1::Consult consult = MakeEcgConsult(kXiyangdian, std::string("bad-") + c.name);
  c.mutate(consult);
  auto s = refclient::ConsultClient(*clinic, once).Request(consult).status();
  EXPECT_EQ(s.code(), c.code) << s;
  EXPECT_EQ(std::string(s.message()).rfind(std::string(c.field) + ":", 0), 0u)
      << "message should start with the field name: " << s.message();
  EXPECT_EQ(CountRows("consults"), 0);
  EXPECT_EQ(CountRows("messages"), 0);
}

INSTANTIATE_TEST_SUITE_P(Request, BadConsultTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<BadConsult>& i) {
                           return std::string(i.param.name);
                         });

TEST_F(BadConsultTest, BadTransitionsReportsAndMessagesNameTheirField) {
  auto clinic = ConnectAs(broker_->address(), "xiyangdian-thc");
  auto center = ConnectAs(broker_->address(), "ecg-center");
  refclient::ConsultClient township(*clinic), ecg(*center);
  auto requested = township.Request(MakeEcgConsult(kXiyangdian, "bad-later"));
  ASSERT_TRUE(requested.ok()) << requested.status();
  const std::string id = requested->consult().id();
  auto starts_with = [](const absl::Status& s, const std::string& field) {
    return std::string(s.message()).rfind(field + ":", 0) == 0;
  };

  v1::TransitionConsultRequest t;
  t.set_consult_id(id);
  t.set_client_request_id("t-1");
  t.mutable_doctor()->set_id("R1");
  t.mutable_doctor()->set_name("刘医生");
  t.mutable_schedule()->mutable_session_at()->set_seconds(time(nullptr) + 3600);
  t.mutable_schedule()->set_meeting_url("http://meet.example.cn/1");
  auto s = ecg.Transition(t).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(starts_with(s, "schedule.meeting_url")) << s;
  t.mutable_decline();  // replaces the schedule: a decline without its coded reason
  s = ecg.Transition(t).status();
  EXPECT_TRUE(starts_with(s, "decline.reason")) << s;

  v1::IssueReportRequest r;
  r.set_consult_id(id);
  r.set_client_request_id("r-1");
  r.mutable_content()->set_opinion("x");
  r.mutable_content()->mutable_consultant()->set_id("R1");
  r.mutable_content()->mutable_consultant()->set_name("刘医生");
  s = ecg.IssueReport(r).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(starts_with(s, "content.findings")) << s;

  v1::ConsultMessage m;
  m.set_consult_id(id);
  m.set_client_request_id("m-1");
  m.mutable_author()->mutable_doctor()->set_id("D1");
  m.mutable_author()->mutable_doctor()->set_name("王医生");
  s = township.Post(m).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(starts_with(s, "message.text")) << s;

  EXPECT_EQ(CountRows("consult_events"), 1) << "only the request";
  EXPECT_EQ(CountRows("consult_reports"), 0);
  EXPECT_EQ(CountRows("consult_messages"), 0);
}

}  // namespace
}  // namespace refbroker::testing

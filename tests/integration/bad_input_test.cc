// Bad input through the real broker: each missing or malformed field and an oversize referral
// get their status code with the field named, and nothing is stored for a rejected request.

#include <gtest/gtest.h>

#include <functional>

#include "broker/domain/identifiers.h"
#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/shared_broker_test.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

using refbroker::v1::Referral;

struct BadSubmit {
  const char* name;
  std::function<void(refbroker::v1::SubmitReferralRequest&)> mutate;
  absl::StatusCode code;
  const char* field;  // expected at the start of the message; "" = not checked (gRPC's own)
};

void PrintTo(const BadSubmit& c, std::ostream* os) { *os << c.name; }

Referral& R(refbroker::v1::SubmitReferralRequest& q) { return *q.mutable_referral(); }

const BadSubmit kCases[] = {
    {"EmptyRequest", [](auto& q) { q.clear_referral(); }, absl::StatusCode::kInvalidArgument,
     "referral"},
    {"NoRequestId", [](auto& q) { R(q).clear_client_request_id(); },
     absl::StatusCode::kInvalidArgument, "referral.client_request_id"},
    {"NoDirection", [](auto& q) { R(q).clear_direction(); }, absl::StatusCode::kInvalidArgument,
     "referral.direction"},
    {"NoPriority", [](auto& q) { R(q).clear_priority(); }, absl::StatusCode::kInvalidArgument,
     "referral.priority"},
    {"NoPatient", [](auto& q) { R(q).clear_patient(); }, absl::StatusCode::kInvalidArgument,
     "referral.patient"},
    {"ResidentIdChecksum",
     [](auto& q) {
       auto* id = R(q).mutable_patient()->mutable_identifiers(0);
       std::string v = id->value();
       v[17] = v[17] == '3' ? '4' : '3';
       id->set_value(v);
     },
     absl::StatusCode::kInvalidArgument, "referral.patient.identifiers[0].value"},
    {"NoPatientName", [](auto& q) { R(q).mutable_patient()->clear_name(); },
     absl::StatusCode::kInvalidArgument, "referral.patient.name"},
    {"SenderCodeChecksum",
     [](auto& q) { R(q).mutable_from()->set_institution("124117234175811019"); },
     absl::StatusCode::kInvalidArgument, "referral.from.institution"},
    {"NoDepartment", [](auto& q) { R(q).mutable_from()->clear_department(); },
     absl::StatusCode::kInvalidArgument, "referral.from.department"},
    {"NoDoctor", [](auto& q) { R(q).mutable_from()->clear_doctor(); },
     absl::StatusCode::kInvalidArgument, "referral.from.doctor"},
    {"NoReason", [](auto& q) { R(q).clear_reason(); }, absl::StatusCode::kInvalidArgument,
     "referral.reason"},
    {"NoDiagnosis", [](auto& q) { R(q).clear_diagnoses(); }, absl::StatusCode::kInvalidArgument,
     "referral.diagnoses"},
    {"BadIcd10", [](auto& q) { R(q).mutable_diagnoses(0)->set_code("chest pain"); },
     absl::StatusCode::kInvalidArgument, "referral.diagnoses[0].code"},
    {"NoConsent", [](auto& q) { R(q).clear_consent(); }, absl::StatusCode::kInvalidArgument,
     "referral.consent.given"},
    {"ConsentNotGiven", [](auto& q) { R(q).mutable_consent()->set_given(false); },
     absl::StatusCode::kInvalidArgument, "referral.consent.given"},
    {"ReceiverChecksum", [](auto& q) { R(q).set_to_institution("12411723417580001C"); },
     absl::StatusCode::kInvalidArgument, "referral.to_institution"},
    {"ReceiverUnregistered", [](auto& q) { R(q).set_to_institution("91350100M000100Y43"); },
     absl::StatusCode::kInvalidArgument, "referral.to_institution"},
    {"ReceiverIsATownship", [](auto& q) { R(q).set_to_institution(kGuhuai); },
     absl::StatusCode::kInvalidArgument, "referral.to_institution"},
    {"DownWithoutItsUpLeg", [](auto& q) { R(q).set_direction(refbroker::v1::DOWN); },
     absl::StatusCode::kInvalidArgument, "referral.continues_referral_id"},
    {"DownWithoutReason",
     [](auto& q) {
       R(q).set_direction(refbroker::v1::DOWN);
       R(q).set_continues_referral_id("ref-x");
     },
     absl::StatusCode::kInvalidArgument, "referral.down_reason"},
    {"UpWithAFollowUpPlan", [](auto& q) { R(q).set_follow_up_plan("rehab"); },
     absl::StatusCode::kInvalidArgument, "referral.follow_up_plan"},
    {"SubmittingAsAnotherClinic", [](auto& q) { R(q).mutable_from()->set_institution(kGuhuai); },
     absl::StatusCode::kPermissionDenied, "referral.from.institution"},
    {"OversizeReferral", [](auto& q) { R(q).set_clinical_summary(std::string(300 * 1024, 'x')); },
     absl::StatusCode::kResourceExhausted, "referral"},
    {"OversizeMessageForTheTransport",
     [](auto& q) { R(q).set_clinical_summary(std::string(2 * 1024 * 1024, 'x')); },
     absl::StatusCode::kResourceExhausted, ""},
};

using BadInputTest = SharedBrokerTest<BadSubmit>;

TEST_P(BadInputTest, IsRejectedWithTheFieldNamedAndNothingStored) {
  const BadSubmit& c = GetParam();
  auto clinic = ConnectAs(broker_->address(), "xiyangdian-thc");
  auto stub = refbroker::v1::ReferralService::NewStub(clinic->channel());
  refbroker::v1::SubmitReferralRequest req;
  *req.mutable_referral() = MakeReferral(kXiyangdian, std::string("bad-") + c.name);
  c.mutate(req);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  refbroker::v1::SubmitReferralResponse resp;
  absl::Status s = refclient::FromGrpc(stub->SubmitReferral(&ctx, req, &resp));
  EXPECT_EQ(s.code(), c.code) << s;
  if (*c.field) {
    EXPECT_EQ(std::string(s.message()).rfind(std::string(c.field) + ":", 0), 0u)
        << "message should start with the field name: " << s.message();
  }
  EXPECT_EQ(CountRows("referrals"), 0);
  EXPECT_EQ(CountRows("messages"), 0);
}

INSTANTIATE_TEST_SUITE_P(Submit, BadInputTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<BadSubmit>& i) {
                           return std::string(i.param.name);
                         });

TEST(BadSubscribe, MalformedOpenRequestsAreInvalidArgumentNamingTheField) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  struct Case {
    std::function<void(refbroker::v1::SubscribeRequest&)> make;
    const char* field;
  } cases[] = {
      {[](auto& r) { r.mutable_ack()->set_sequence(1); }, "open"},
      {[](auto& r) { r.mutable_open()->set_consumer_group("his"); }, "open.queue.owner"},
      {[](auto& r) {
         r.mutable_open()->mutable_queue()->set_owner(kPeopleHospital);
         r.mutable_open()->set_consumer_group("his");
       },
       "open.queue.kind"},
      {[](auto& r) {
         r.mutable_open()->mutable_queue()->set_owner(kPeopleHospital);
         r.mutable_open()->mutable_queue()->set_kind(refbroker::v1::REFERRALS);
         r.mutable_open()->set_consumer_group("bad group!");
       },
       "open.consumer_group"},
      {[](auto& r) {
         r.mutable_open()->mutable_queue()->set_owner(kPeopleHospital);
         r.mutable_open()->mutable_queue()->set_kind(refbroker::v1::REFERRALS);
         r.mutable_open()->set_consumer_group("his");
         r.mutable_open()->set_window(1000000);
       },
       "open.window"},
  };
  for (const auto& c : cases) {
    auto stub = refbroker::v1::DeliveryService::NewStub(hospital->channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    auto stream = stub->Subscribe(&ctx);
    refbroker::v1::SubscribeRequest req;
    c.make(req);
    stream->Write(req);
    stream->WritesDone();
    refbroker::v1::Delivery d;
    while (stream->Read(&d)) {
    }
    absl::Status s = refclient::FromGrpc(stream->Finish());
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << c.field << ": " << s;
    EXPECT_EQ(std::string(s.message()).rfind(std::string(c.field) + ":", 0), 0u) << s.message();
  }
}

}  // namespace
}  // namespace refbroker::testing

// ConsultWorkflow through a real SQLite store: requests, reports (immutable, addenda, digest),
// readings published as result records, threads in order, conversion to a referral.

#include <gtest/gtest.h>

#include "broker/common/ids.h"
#include "google/protobuf/util/time_util.h"
#include "tests/support/consult_fixture.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

class ConsultWorkflowTest : public ConsultFixture {
 protected:
  void Accept(const std::string& id) {
    v1::TransitionConsultRequest r;
    r.set_consult_id(id);
    r.set_client_request_id("accept-" + id);
    r.mutable_doctor()->set_id("ECG-07");
    r.mutable_doctor()->set_name("刘医生");
    r.mutable_accept();
    auto out = consults_->Transition(P(kEcgCenter), r);
    ASSERT_TRUE(out.ok()) << out.status();
  }
  v1::ConsultMessage Msg(const std::string& id, const std::string& rid, const std::string& text) {
    v1::ConsultMessage m;
    m.set_consult_id(id);
    m.set_client_request_id(rid);
    m.mutable_author()->mutable_doctor()->set_id("D1");
    m.mutable_author()->mutable_doctor()->set_name("王医生");
    m.set_text(text);
    return m;
  }
};

TEST_F(ConsultWorkflowTest, RequestGoesToTheTargetsWorklistWithItsAcceptanceDeadline) {
  auto out = consults_->Request(P(kClinic), NewConsult("c-1", v1::EMERGENCY));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->value.state(), v1::CONSULT_REQUESTED);
  auto rec = *store_->GetConsult(out->value.id());
  EXPECT_EQ(rec.due_at, clock_.Now() + 10LL * 60 * 1000000);  // EMERGENCY: 10 minutes
  auto d = LastOn(std::string(kEcgCenter) + "/consults");
  EXPECT_EQ(d.consult().id(), out->value.id());
  EXPECT_EQ(d.consult().question(), NewConsult("c-1").question());
  // A retry is the same consult; a different consult under the same id is refused.
  auto again = consults_->Request(P(kClinic), NewConsult("c-1", v1::EMERGENCY));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->value.id(), out->value.id());
  auto other = NewConsult("c-1", v1::EMERGENCY);
  other.set_question("另一个问题");
  EXPECT_EQ(consults_->Request(P(kClinic), other).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(ConsultWorkflowTest, TargetMustOfferTheService) {
  auto c = NewConsult("c-2");
  c.mutable_target()->set_service(v1::IMAGING_READING);  // the ECG center does not read images
  auto out = consults_->Request(P(kClinic), c);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.status().message().rfind("consult.target.service:", 0), 0u) << out.status();
  c.mutable_target()->set_institution(kHospital);
  c.mutable_target()->set_service(v1::SPECIALTY_OPINION);
  c.mutable_target()->set_specialty("cardiology");
  EXPECT_TRUE(consults_->Request(P(kClinic), c).ok());
  c.set_client_request_id("c-2b");
  c.mutable_target()->set_specialty("astrology");
  EXPECT_EQ(consults_->Request(P(kClinic), c).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto as_other = NewConsult("c-2c");
  EXPECT_EQ(consults_->Request(P(kOtherClinic), as_other).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ConsultWorkflowTest, AReportIsImmutableAndAnAddendumLinksToIt) {
  std::string id = RequestEcg("c-3");
  Accept(id);
  auto first = consults_->IssueReport(P(kEcgCenter), Report(id, "r-1"));
  ASSERT_TRUE(first.ok()) << first.status();
  const v1::ConsultReport& report = first->value;
  EXPECT_EQ(report.sha256(), MessageDigest(report.content())) << "the digest verifies";
  EXPECT_EQ(report.sha256().size(), 64u);
  EXPECT_EQ(report.signer(), std::string(kEcgCenter) + "/ECG-07");
  EXPECT_EQ(report.content().consult_id(), id);
  EXPECT_EQ(store_->GetConsult(id)->state, v1::CONSULT_REPORTED);

  // A second report that is not an addendum: FAILED_PRECONDITION, nothing stored.
  auto changed = Report(id, "r-2");
  changed.mutable_content()->set_opinion("改为：正常心电图");
  auto refused = consults_->IssueReport(P(kEcgCenter), changed);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_EQ(store_->ListConsultReports(id)->size(), 1u);

  // The store itself refuses to change or delete an issued report.
  auto direct = store_->ChangeConsult([&] {
    auto rec = *store_->GetConsult(id);
    storage::ConsultChange c;
    c.consult_id = id;
    c.expected_version = rec.version;
    c.state = rec.state;
    c.updated_at = clock_.Now();
    c.body = rec.body;
    c.event = {id, kEcgCenter, "", v1::CONSULT_ADDENDUM, clock_.Now(), ""};
    c.report = storage::ConsultReportRow{report.id(), id, "0", "", clock_.Now(), "tampered"};
    return c;
  }());
  EXPECT_FALSE(direct.ok());
  auto stored = *store_->ListConsultReports(id);
  ASSERT_EQ(stored.size(), 1u);
  v1::ConsultReport reread;
  ASSERT_TRUE(reread.ParseFromString(stored[0].body));
  EXPECT_EQ(reread.content().opinion(), report.content().opinion());

  // An addendum is a new report naming the first; both are kept, in order.
  auto addendum = consults_->IssueReport(P(kEcgCenter), Report(id, "r-3", report.id()));
  ASSERT_TRUE(addendum.ok()) << addendum.status();
  EXPECT_EQ(addendum->value.content().addendum_to(), report.id());
  EXPECT_NE(addendum->value.id(), report.id());
  auto consult = consults_->Get(P(kClinic), id, false);
  ASSERT_TRUE(consult.ok());
  ASSERT_EQ(consult->reports_size(), 2);
  EXPECT_EQ(consult->reports(0).id(), report.id());
  EXPECT_EQ(consult->reports(1).content().addendum_to(), report.id());
  // An addendum to a report that does not exist is refused.
  EXPECT_EQ(consults_->IssueReport(P(kEcgCenter), Report(id, "r-4", "rpt-nope")).status().code(),
            absl::StatusCode::kNotFound);
  // A retry of the first report returns it, unchanged.
  auto retry = consults_->IssueReport(P(kEcgCenter), Report(id, "r-1"));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->value.sha256(), report.sha256());
}

TEST_F(ConsultWorkflowTest, AReadingIsPublishedAsAResultWithoutItsConclusionRecognized) {
  std::string id = RequestEcg("c-4", v1::EMERGENCY);
  Accept(id);
  auto req = Report(id, "r-1");
  auto* reading = req.mutable_content()->mutable_reading();
  reading->set_item_code("ECG-12");
  reading->set_item_name("常规12导联心电图");
  auto* m = reading->mutable_ecg()->add_measurements();
  m->set_name("HR");
  m->set_value(88);
  m->set_unit("bpm");
  auto out = consults_->IssueReport(P(kEcgCenter), req);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_FALSE(out->value.result_id().empty());
  auto result = store_->GetResult(out->value.result_id());
  ASSERT_TRUE(result.ok());
  v1::ResultRecord r;
  ASSERT_TRUE(r.ParseFromString(result->body));
  EXPECT_EQ(r.kind(), v1::ECG);
  EXPECT_EQ(r.performing_institution(), kEcgCenter);
  EXPECT_EQ(r.addressed_to(), kClinic);
  EXPECT_EQ(r.conclusion(), req.content().opinion());
  EXPECT_EQ(r.ecg().measurements(0).value(), 88);
  // The reading takes part in the recognition query.
  v1::RecognizeRequest q;
  *q.mutable_patient() = NewConsult("c-4").patient().identifiers(0);
  q.add_item_codes("ECG-12");
  auto verdicts = results_->Recognize(P(kHospital), q);
  ASSERT_TRUE(verdicts.ok()) << verdicts.status();
  ASSERT_EQ(verdicts->verdicts_size(), 1);
  EXPECT_EQ(verdicts->verdicts(0).result_id(), r.id());
}

TEST_F(ConsultWorkflowTest, ThreadMessagesAreNumberedInOrderAndReachTheOtherSide) {
  std::string id = RequestEcg("c-5");
  for (int i = 0; i < 5; ++i) {
    const char* who = i % 2 == 0 ? kClinic : kEcgCenter;
    auto out =
        consults_->Post(P(who), Msg(id, "m-" + std::to_string(i), "message " + std::to_string(i)));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->value.seq(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(out->value.author().institution(), who);
  }
  auto retry = consults_->Post(P(kClinic), Msg(id, "m-0", "message 0"));
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->value.seq(), 1u);
  auto c = consults_->Get(P(kEcgCenter), id, true);
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->thread_size(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c->thread(i).text(), "message " + std::to_string(i));
  EXPECT_EQ(stored_messages_.size(), 5u) << "each message went to the live sessions once";
  EXPECT_EQ(Messages()[std::string(kEcgCenter) + "/consult-updates"], 3u);
  EXPECT_EQ(Messages()[std::string(kClinic) + "/consult-updates"], 2u);
  EXPECT_EQ(consults_->Post(P(kOtherClinic), Msg(id, "m-x", "hi")).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ConsultWorkflowTest, ConversionMakesAReferralThatKeepsAttachmentsAndTheLink) {
  // A lab result of the patient, attached to the consult.
  auto consult = NewConsult("c-6", v1::URGENT);
  v1::ResultRecord lab;
  lab.set_client_request_id("lab-1");
  lab.set_kind(v1::LAB);
  *lab.mutable_patient() = consult.patient();
  lab.set_performing_institution(kClinic);
  lab.set_item_code("LAB-GLU");
  *lab.mutable_performed_at() =
      google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(clock_.Now() - 3600LL * 1000000);
  auto* v = lab.add_lab_values();
  v->set_analyte("GLU");
  v->set_value("11.2");
  auto published = results_->Publish(P(kClinic), lab);
  ASSERT_TRUE(published.ok()) << published.status();
  consult.add_attached_result_ids(published->result().id());
  auto requested = consults_->Request(P(kClinic), consult);
  ASSERT_TRUE(requested.ok()) << requested.status();
  std::string id = requested->value.id();
  EXPECT_EQ(requested->value.attached_result_verdicts_size(), 1);
  Accept(id);
  ASSERT_TRUE(consults_->IssueReport(P(kEcgCenter), Report(id, "r-1")).ok());

  v1::ConvertToReferralRequest conv;
  conv.set_consult_id(id);
  conv.set_client_request_id("conv-1");
  conv.mutable_doctor()->set_id("D1");
  conv.mutable_doctor()->set_name("王医生");
  conv.set_reason("心电图提示急性下壁心梗，上转行PCI");
  conv.set_department("全科");
  auto* dx = conv.add_diagnoses();
  dx->set_code("I21.1");
  dx->set_name("急性下壁心肌梗死");
  auto out = consults_->Convert(P(kClinic), conv);
  ASSERT_TRUE(out.ok()) << out.status();
  const v1::Referral& referral = out->referral();
  EXPECT_EQ(referral.converted_from_consult_id(), id);
  EXPECT_EQ(out->consult().converted_referral_id(), referral.id());
  ASSERT_EQ(referral.attached_result_ids_size(), 1);
  EXPECT_EQ(referral.attached_result_ids(0), published->result().id());
  EXPECT_EQ(referral.attached_result_verdicts_size(), 1);
  EXPECT_EQ(referral.patient().identifiers(0).value(), consult.patient().identifiers(0).value());
  EXPECT_EQ(referral.to_institution(), kHospital) << "an ECG center does not admit: the lead";
  // The link survives in the store, both ways.
  auto stored_ref = workflow_->Get(P(kHospital), referral.id());
  ASSERT_TRUE(stored_ref.ok());
  EXPECT_EQ(stored_ref->converted_from_consult_id(), id);
  EXPECT_EQ(consults_->Get(P(kClinic), id, false)->converted_referral_id(), referral.id());
  // A retry returns the same referral; a second conversion is refused.
  auto retry = consults_->Convert(P(kClinic), conv);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->referral().id(), referral.id());
  conv.set_client_request_id("conv-2");
  EXPECT_EQ(consults_->Convert(P(kClinic), conv).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(consults_->Convert(P(kEcgCenter), conv).status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace refbroker::testing

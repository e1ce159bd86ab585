// Results and mutual recognition through the real broker: a township publishes a lab result
// and an ECG, refers the patient up with both attached; the county hospital receives the
// referral with the verdicts stamped, records a re-test reason, publishes a new result, and a
// second new result without a reason is marked repeat_without_reason. Images travel by
// reference and round-trip unchanged; an oversize waveform is RESOURCE_EXHAUSTED.

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "client/refclient/referral_client.h"
#include "client/refclient/result_client.h"
#include "google/protobuf/util/time_util.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;
using google::protobuf::util::TimeUtil;

v1::ResultRecord Result(const v1::Patient& patient, const std::string& performer,
                        const std::string& request_id, v1::ResultKind kind, const std::string& item,
                        int64_t hours_ago) {
  v1::ResultRecord r;
  r.set_client_request_id(request_id);
  r.set_kind(kind);
  *r.mutable_patient() = patient;
  r.set_performing_institution(performer);
  r.set_addressed_to(kPeopleHospital);
  r.set_item_code(item);
  *r.mutable_performed_at() = TimeUtil::GetCurrentTime() - TimeUtil::HoursToDuration(hours_ago);
  r.mutable_reporting_doctor()->set_id("D-77");
  r.mutable_reporting_doctor()->set_name("孙医生");
  if (kind == v1::LAB) {
    auto* v = r.add_lab_values();
    v->set_analyte("GLU");
    v->set_value("7.8");
    v->set_unit("mmol/L");
    v->set_reference_range("3.9-6.1");
    v->set_abnormal_flag("H");
    r.set_conclusion("空腹血糖升高");
  } else if (kind == v1::ECG) {
    auto* m = r.mutable_ecg()->add_measurements();
    m->set_name("QTc");
    m->set_value(452);
    m->set_unit("ms");
    r.set_conclusion("窦性心律，ST段改变");
  }
  return r;
}

class RecognitionFlow : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(broker_.Start().ok()) << broker_.log_path(); }
  BrokerProcess broker_;
};

TEST_F(RecognitionFlow, VerdictsAreStampedOnTheReferralAndRepeatsWithoutReasonAreMarked) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker_.address(), "people-hospital");
  refclient::ResultClient township_results(*clinic), county_results(*hospital);
  v1::Referral referral = MakeReferral(kXiyangdian, "rec-1", v1::URGENT);
  const v1::Patient patient = referral.patient();

  auto lab = township_results.Publish(Result(patient, kXiyangdian, "lis-1", v1::LAB, "LAB-GLU", 2));
  auto ecg = township_results.Publish(Result(patient, kXiyangdian, "ecg-1", v1::ECG, "ECG-12", 1));
  ASSERT_TRUE(lab.ok()) << lab.status();
  ASSERT_TRUE(ecg.ok()) << ecg.status();
  EXPECT_FALSE(lab->result().repeat_without_reason());

  referral.add_attached_result_ids(lab->result().id());
  referral.add_attached_result_ids(ecg->result().id());
  auto submitted = refclient::ReferralClient(*clinic).Submit(referral);
  ASSERT_TRUE(submitted.ok()) << submitted.status();

  CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 8);
  ASSERT_TRUE(inbox.WaitFor(1, 10));
  const v1::Referral got = inbox.deliveries()[0].referral();
  ASSERT_EQ(got.attached_result_verdicts_size(), 2);
  for (const auto& v : got.attached_result_verdicts()) {
    EXPECT_TRUE(v.recognizable()) << v.ShortDebugString();
    EXPECT_EQ(v.hr_mark(), "平舆县医共体HR");
    EXPECT_FALSE(v.conclusion_recognized());
    EXPECT_EQ(v.catalogue_version(), 1);
  }
  // The county's system also received both results on its RESULTS queue.
  CollectingSubscriber results_queue(*hospital, kPeopleHospital, "his", 8, nullptr, v1::RESULTS);
  ASSERT_TRUE(results_queue.WaitFor(2, 10));

  // A re-test with a recorded reason, then one without.
  v1::Retest retest;
  retest.set_client_request_id("rt-1");
  *retest.mutable_patient() = patient.identifiers(0);
  retest.set_item_code("LAB-GLU");
  retest.set_reason(v1::RETEST_FAST_CHANGING_VALUE);
  retest.set_text("血糖波动大，术前复查");
  retest.mutable_doctor()->set_id("D-0427");
  retest.mutable_doctor()->set_name("李医生");
  retest.set_prior_result_id(lab->result().id());
  auto recorded = county_results.RecordRetest(retest);
  ASSERT_TRUE(recorded.ok()) << recorded.status();

  auto again =
      county_results.Publish(Result(patient, kPeopleHospital, "his-lis-1", v1::LAB, "LAB-GLU", 0));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->result().repeat_without_reason());
  EXPECT_EQ(again->result().retest_id(), recorded->retest().id());
  EXPECT_EQ(again->result().repeats_result_id(), lab->result().id());

  auto unexplained =
      county_results.Publish(Result(patient, kPeopleHospital, "his-lis-2", v1::LAB, "LAB-GLU", 0));
  ASSERT_TRUE(unexplained.ok()) << unexplained.status();
  EXPECT_TRUE(unexplained->result().repeat_without_reason());

  v1::RecognizeRequest q;
  *q.mutable_patient() = patient.identifiers(0);
  q.add_item_codes("LAB-GLU");
  q.add_item_codes("ECG-12");
  auto verdicts = county_results.Recognize(q);
  ASSERT_TRUE(verdicts.ok()) << verdicts.status();
  EXPECT_EQ(verdicts->verdicts_size(), 4);

  auto op = ConnectAs(broker_.address(), "operator");
  auto summary = refclient::ResultClient(*op).Summary({});
  ASSERT_TRUE(summary.ok()) << summary.status();
  uint64_t with_reason = 0, without = 0;
  for (const auto& c : summary->counts()) {
    if (c.institution() != kPeopleHospital) continue;
    if (c.reason() == v1::RETEST_FAST_CHANGING_VALUE) with_reason += c.count();
    if (c.reason() == v1::RETEST_REASON_UNSPECIFIED) without += c.count();
  }
  EXPECT_EQ(with_reason, 1u);
  EXPECT_EQ(without, 1u);

  std::string out;
  ASSERT_EQ(RunRefctl(broker_.address(), "retests", &out), 0) << out;
  EXPECT_NE(out.find("RETEST_FAST_CHANGING_VALUE"), std::string::npos) << out;
  EXPECT_NE(out.find("repeat without reason"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(RunRefctl(broker_.address(),
                      "--as people-hospital recognize --id " + patient.identifiers(0).value() +
                          " --item LAB-GLU --item ECG-12",
                      &out),
            0)
      << out;
  EXPECT_NE(out.find("平舆县医共体HR"), std::string::npos) << out;
}

// A repeat is judged against the newest earlier result of the item that could be recognized:
// newer ones from a laboratory without EQA for the item (passed over by what the results index
// holds, their rows not read) and with a quality flag (passed over once the row is read) do
// not count.
TEST_F(RecognitionFlow, ARepeatNamesTheNewestEarlierResultThatCouldBeRecognized) {
  auto xiyangdian = ConnectAs(broker_.address(), "xiyangdian-thc");
  auto guhuai = ConnectAs(broker_.address(), "guhuai-thc");
  auto hospital = ConnectAs(broker_.address(), "people-hospital");
  refclient::ResultClient xiyangdian_results(*xiyangdian), guhuai_results(*guhuai),
      county_results(*hospital);
  const v1::Patient patient = MakeReferral(kXiyangdian, "rec-repeat", v1::ROUTINE).patient();

  auto usable =
      xiyangdian_results.Publish(Result(patient, kXiyangdian, "lis-1", v1::LAB, "LAB-GLU", 5));
  v1::ResultRecord flagged_record = Result(patient, kXiyangdian, "lis-2", v1::LAB, "LAB-GLU", 3);
  flagged_record.add_quality_flags("HEMOLYZED");
  auto flagged = xiyangdian_results.Publish(flagged_record);
  auto no_eqa = guhuai_results.Publish(Result(patient, kGuhuai, "gh-1", v1::LAB, "LAB-GLU", 1));
  ASSERT_TRUE(usable.ok()) << usable.status();
  ASSERT_TRUE(flagged.ok()) << flagged.status();
  ASSERT_TRUE(no_eqa.ok()) << no_eqa.status();

  auto repeat =
      county_results.Publish(Result(patient, kPeopleHospital, "his-1", v1::LAB, "LAB-GLU", 0));
  ASSERT_TRUE(repeat.ok()) << repeat.status();
  EXPECT_TRUE(repeat->result().repeat_without_reason());
  EXPECT_EQ(repeat->result().repeats_result_id(), usable->result().id())
      << "flagged " << flagged->result().id() << ", without EQA " << no_eqa->result().id();

  // Performed before every earlier one: nothing to repeat.
  auto first =
      county_results.Publish(Result(patient, kPeopleHospital, "his-2", v1::LAB, "LAB-GLU", 9));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->result().repeat_without_reason());
  EXPECT_TRUE(first->result().repeats_result_id().empty());
}

TEST_F(RecognitionFlow, AttachmentsMustBeTheReferralPatientsResults) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  v1::Referral referral = MakeReferral(kXiyangdian, "rec-2");
  referral.add_attached_result_ids("res-unknown");
  auto s = refclient::ReferralClient(*clinic).Submit(referral).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_EQ(std::string(s.message()).rfind("referral.attached_result_ids[0]:", 0), 0u) << s;
  auto other = refclient::ResultClient(*clinic).Publish(
      Result(MakeReferral(kXiyangdian, "someone-else").patient(), kXiyangdian, "lis-x", v1::LAB,
             "LAB-GLU", 1));
  ASSERT_TRUE(other.ok());
  referral.set_attached_result_ids(0, other->result().id());
  s = refclient::ReferralClient(*clinic).Submit(referral).status();
  EXPECT_NE(s.message().find("another patient"), absl::string_view::npos) << s;
}

TEST_F(RecognitionFlow, ImagesByReferenceRoundTripAndOversizeWaveformsAreRefused) {
  auto hospital = ConnectAs(broker_.address(), "people-hospital");
  refclient::ResultClient results(*hospital);
  v1::Patient patient = MakeReferral(kXiyangdian, "img").patient();
  v1::ResultRecord ct = Result(patient, kPeopleHospital, "pacs-1", v1::IMAGING, "IMG-CXR", 1);
  auto* img = ct.add_images();
  img->set_study_instance_uid("1.2.156.112605.14038013507713.20261122.1.4028");
  img->set_wado_rs_url("https://pacs.pingyu.example/wado-rs/studies/1.2.156.112605");
  img->set_sha256("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
  img->set_size_bytes(52428800);
  img->set_modality(v1::XRAY);
  auto published = results.Publish(ct);
  ASSERT_TRUE(published.ok()) << published.status();
  auto read = results.Get(published->result().id());
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->images_size(), 1);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(read->images(0), *img));

  v1::ResultRecord big = Result(patient, kPeopleHospital, "ecg-big", v1::ECG, "ECG-12", 1);
  big.mutable_ecg()->set_waveform(std::string(65 * 1024, '\x01'));  // the test broker allows 64
  auto s = results.Publish(big).status();
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_EQ(std::string(s.message()).rfind("result.ecg.waveform:", 0), 0u) << s;

  v1::ResultRecord bad_uid = ct;
  bad_uid.set_client_request_id("pacs-2");
  bad_uid.mutable_images(0)->set_study_instance_uid("not-a-uid");
  s = results.Publish(bad_uid).status();
  EXPECT_EQ(std::string(s.message()).rfind("result.images[0].study_instance_uid:", 0), 0u) << s;
  auto clinic = ConnectAs(broker_.address(), "guhuai-thc");
  EXPECT_TRUE(absl::IsPermissionDenied(
      refclient::ResultClient(*clinic).Get(published->result().id()).status()));
}

}  // namespace
}  // namespace refbroker::testing

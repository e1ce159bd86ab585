// Teleconsultation and remote reading through the real broker (real mTLS, real SQLite):
// - a township sends an ECG for reading as EMERGENCY; the ECG center's two reading stations
//   share the worklist as one consumer group and the EMERGENCY one comes first; one station
//   takes it, accepts and reports; the township receives the report (digest verified) and the
//   reading as a result record, which the recognition query then finds; a thread of messages
//   arrives complete and in order on both sides, live and through the queues;
// - an unaccepted EMERGENCY consult escalates after its (test-configured) deadline;
// - an issued report cannot be changed (FAILED_PRECONDITION); an addendum links to it;
// - a consult becomes a referral whose attachments and link survive.

#include <gtest/gtest.h>

#include "client/refclient/consult_client.h"
#include "client/refclient/referral_client.h"
#include "client/refclient/result_client.h"
#include "google/protobuf/util/time_util.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;
using google::protobuf::util::TimeUtil;

v1::TransitionConsultRequest Accept(const std::string& id, const std::string& request_id) {
  v1::TransitionConsultRequest r;
  r.set_consult_id(id);
  r.set_client_request_id(request_id);
  r.mutable_doctor()->set_id("ECG-07");
  r.mutable_doctor()->set_name("刘医生");
  r.mutable_accept()->set_note("station 1 reads it");
  return r;
}

v1::IssueReportRequest Report(const std::string& id, const std::string& request_id,
                              bool with_reading, const std::string& addendum_to = "") {
  v1::IssueReportRequest r;
  r.set_consult_id(id);
  r.set_client_request_id(request_id);
  auto* c = r.mutable_content();
  c->set_findings("窦性心律，心率88次/分，II、III、aVF导联ST段抬高0.2mV");
  c->set_opinion(addendum_to.empty() ? "急性下壁心肌梗死可能" : "补充：建议复查心肌酶");
  c->set_recommendations("立即上转行急诊PCI");
  c->mutable_consultant()->set_id("ECG-07");
  c->mutable_consultant()->set_name("刘医生");
  c->set_addendum_to(addendum_to);
  if (with_reading) {
    auto* reading = c->mutable_reading();
    reading->set_item_code("ECG-12");
    reading->set_item_name("常规12导联心电图");
    auto* m = reading->mutable_ecg()->add_measurements();
    m->set_name("HR");
    m->set_value(88);
    m->set_unit("bpm");
  }
  return r;
}

v1::ConsultMessage Message(const std::string& id, const std::string& request_id,
                           const std::string& text) {
  v1::ConsultMessage m;
  m.set_consult_id(id);
  m.set_client_request_id(request_id);
  m.mutable_author()->mutable_doctor()->set_id("D-1");
  m.mutable_author()->mutable_doctor()->set_name("王医生");
  m.set_text(text);
  return m;
}

// Reading stations hold a consult while they work on it: a 30 s ack deadline, as a center
// would configure, so a slow test machine does not see redeliveries to the other station.
BrokerConfig StationConfig() {
  BrokerConfig c;
  c.ack_deadline_ms = 30000;
  return c;
}

class ConsultFlow : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(broker_.Start().ok()) << broker_.log_path(); }
  BrokerProcess broker_{StationConfig()};
};

TEST_F(ConsultFlow, EmergencyEcgReadingThroughSharedWorklistWithReportThreadAndRecognition) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  auto center = ConnectAs(broker_.address(), "ecg-center");
  auto hospital = ConnectAs(broker_.address(), "people-hospital");
  refclient::ConsultClient township(*clinic), ecg(*center);

  // A routine reading first, then the emergency one.
  auto routine = township.Request(MakeEcgConsult(kXiyangdian, "ecg-routine", v1::ROUTINE));
  ASSERT_TRUE(routine.ok()) << routine.status();
  v1::Consult emergency_consult = MakeEcgConsult(kXiyangdian, "ecg-emergency", v1::EMERGENCY);
  auto emergency = township.Request(emergency_consult);
  ASSERT_TRUE(emergency.ok()) << emergency.status();
  const std::string id = emergency->consult().id();
  EXPECT_EQ(emergency->consult().state(), v1::CONSULT_REQUESTED);

  // Two reading stations share the worklist (one consumer group, window 1, no auto-ack).
  auto hold = [](const v1::Delivery&) { return refclient::Decision::None(); };
  CollectingSubscriber station1(*center, kEcgCenter, "reading-stations", 1, hold, v1::CONSULTS);
  ASSERT_TRUE(station1.WaitFor(1, 10));
  EXPECT_EQ(station1.deliveries()[0].consult().id(), id) << "EMERGENCY comes first";
  CollectingSubscriber station2(*center, kEcgCenter, "reading-stations", 1, hold, v1::CONSULTS);
  ASSERT_TRUE(station2.WaitFor(1, 10));
  EXPECT_EQ(station2.deliveries()[0].consult().id(), routine->consult().id())
      << "the other station gets the next one, not the same";
  EXPECT_EQ(station1.deliveries().size(), 1u);

  // Station 1 takes it: accepts, and the township learns it.
  CollectingSubscriber updates(*clinic, kXiyangdian, "township-his", 16, nullptr,
                               v1::CONSULT_UPDATES);
  auto accepted = ecg.Transition(Accept(id, "acc-1"));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->consult().state(), v1::CONSULT_ACCEPTED);
  EXPECT_TRUE(station1.Ack(station1.deliveries()[0].sequence()));

  // A live thread: both sides connected, messages interleaved.
  auto township_session = refclient::ConsultSession::Join(*clinic, id);
  auto center_session = refclient::ConsultSession::Join(*center, id);
  ASSERT_TRUE(township_session.ok()) << township_session.status();
  ASSERT_TRUE(center_session.ok()) << center_session.status();
  std::vector<std::string> texts;
  for (int i = 0; i < 6; ++i) {
    bool from_township = i % 2 == 0;
    std::string text = (from_township ? "乡镇: " : "中心: ") + std::to_string(i);
    texts.push_back(text);
    auto& session = from_township ? *township_session : *center_session;
    ASSERT_TRUE(session->Send(Message(id, "msg-" + std::to_string(i), text)).ok());
    // Each side sees every stored message, in the thread's order, before the next is sent.
    for (auto* s : {township_session->get(), center_session->get()}) {
      auto got = s->Next(std::chrono::seconds(10));
      ASSERT_TRUE(got.has_value()) << "message " << i << ": " << s->Close();
      EXPECT_EQ(got->text(), text);
      EXPECT_EQ(got->seq(), static_cast<uint64_t>(i + 1));
      EXPECT_EQ(got->author().institution(), from_township ? kXiyangdian : kEcgCenter);
    }
  }
  EXPECT_TRUE((*township_session)->Close().ok());
  EXPECT_TRUE((*center_session)->Close().ok());

  // The report, with the reading's data.
  auto report = ecg.IssueReport(Report(id, "rpt-1", /*with_reading=*/true));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(refclient::VerifyReportDigest(report->report()));
  ASSERT_FALSE(report->report().result_id().empty());

  // The township receives: ACCEPT, the center's three messages in order, the REPORT.
  ASSERT_TRUE(updates.WaitFor(5, 10));
  std::vector<std::string> seen_messages;
  const v1::ConsultReport* received_report = nullptr;
  auto got = updates.deliveries();
  for (const auto& d : got) {
    ASSERT_TRUE(d.has_consult_update());
    const auto& u = d.consult_update();
    EXPECT_EQ(u.consult_id(), id);
    if (u.has_message()) seen_messages.push_back(u.message().text());
    if (u.has_report()) received_report = &u.report();
  }
  EXPECT_EQ(seen_messages, (std::vector<std::string>{texts[1], texts[3], texts[5]}));
  ASSERT_NE(received_report, nullptr);
  EXPECT_EQ(received_report->sha256(), report->report().sha256());
  EXPECT_TRUE(refclient::VerifyReportDigest(*received_report));

  // The center's queue has the township's three messages, in order.
  CollectingSubscriber center_updates(*center, kEcgCenter, "ecg-his", 16, nullptr,
                                      v1::CONSULT_UPDATES);
  ASSERT_TRUE(center_updates.WaitFor(3, 10));
  std::vector<std::string> center_seen;
  for (const auto& d : center_updates.deliveries()) {
    if (d.consult_update().has_message())
      center_seen.push_back(d.consult_update().message().text());
  }
  EXPECT_EQ(center_seen, (std::vector<std::string>{texts[0], texts[2], texts[4]}));

  // The reading arrives as a result record at the township, and the recognition query of the
  // county hospital finds it (its data; the conclusion is the center's opinion, kept apart).
  CollectingSubscriber results(*clinic, kXiyangdian, "lis", 8, nullptr, v1::RESULTS);
  ASSERT_TRUE(results.WaitFor(1, 10));
  const v1::ResultRecord reading = results.deliveries()[0].result();
  EXPECT_EQ(reading.id(), report->report().result_id());
  EXPECT_EQ(reading.kind(), v1::ECG);
  EXPECT_EQ(reading.performing_institution(), kEcgCenter);
  v1::RecognizeRequest q;
  *q.mutable_patient() = emergency_consult.patient().identifiers(0);
  q.add_item_codes("ECG-12");
  auto verdicts = refclient::ResultClient(*hospital).Recognize(q);
  ASSERT_TRUE(verdicts.ok()) << verdicts.status();
  ASSERT_EQ(verdicts->verdicts_size(), 1);
  EXPECT_EQ(verdicts->verdicts(0).result_id(), reading.id());

  // The consult as stored: REPORTED, with its report, history and whole thread.
  auto stored = township.Get(id, /*include_thread=*/true);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->state(), v1::CONSULT_REPORTED);
  EXPECT_EQ(stored->reports_size(), 1);
  ASSERT_EQ(stored->thread_size(), 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(stored->thread(i).text(), texts[i]);
  // Nobody else reads it.
  auto other = ConnectAs(broker_.address(), "guhuai-thc");
  EXPECT_EQ(refclient::ConsultClient(*other).Get(id).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto intruder = refclient::ConsultSession::Join(*other, id);
  EXPECT_EQ(intruder.status().code(), absl::StatusCode::kPermissionDenied) << intruder.status();
}

TEST(ConsultDeadline, AnUnacceptedEmergencyConsultEscalates) {
  BrokerConfig config;
  config.extra_toml = "[consult.accept]\nemergency_s = 2\n";
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok()) << broker.log_path();
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  refclient::ConsultClient township(*clinic);
  auto requested = township.Request(MakeEcgConsult(kXiyangdian, "late-1", v1::EMERGENCY));
  ASSERT_TRUE(requested.ok()) << requested.status();
  auto deadline = TimeUtil::TimestampToMicroseconds(requested->consult().deadline()) -
                  TimeUtil::TimestampToMicroseconds(requested->consult().requested_at());
  EXPECT_EQ(deadline, 2 * 1000000);

  CollectingSubscriber updates(*clinic, kXiyangdian, "township-his", 8, nullptr,
                               v1::CONSULT_UPDATES);
  ASSERT_TRUE(updates.WaitFor(1, 15)) << "no escalation";
  const v1::ConsultUpdate u = updates.deliveries()[0].consult_update();  // a copy: by value
  EXPECT_EQ(u.event().action(), v1::CONSULT_ESCALATE);
  EXPECT_EQ(u.state(), v1::CONSULT_REQUESTED) << "escalation does not change the state";
  auto stored = township.Get(requested->consult().id());
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(stored->escalated());
  EXPECT_FALSE(stored->has_deadline());

  // The operator sees it in refctl late, as escalated.
  std::string out;
  ASSERT_EQ(RunRefctl(broker.address(), "late --within 0", &out), 0) << out;
  EXPECT_NE(out.find(requested->consult().id()), std::string::npos) << out;
  EXPECT_NE(out.find("consult ECG_READING"), std::string::npos) << out;
  EXPECT_NE(out.find("escalated"), std::string::npos) << out;
  // And as a deadline breach on the ECG center's consult queue, which it must still answer.
  auto op = ConnectAs(broker.address(), "operator");
  EXPECT_EQ(DeadlineBreaches(*op, kEcgCenter, v1::CONSULTS), 1);
  auto center = ConnectAs(broker.address(), "ecg-center");
  EXPECT_EQ(DeadlineBreaches(*center, kEcgCenter, v1::CONSULTS), 1);
  // Accepted late, its report is still owed; once reported, it is no longer a breach.
  refclient::ConsultClient ecg(*center);
  ASSERT_TRUE(ecg.Transition(Accept(requested->consult().id(), "late-acc")).ok());
  EXPECT_EQ(DeadlineBreaches(*op, kEcgCenter, v1::CONSULTS), 1);
  auto report = ecg.IssueReport(Report(requested->consult().id(), "late-rpt", false));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(DeadlineBreaches(*op, kEcgCenter, v1::CONSULTS), 0);
}

TEST_F(ConsultFlow, AnIssuedReportCannotBeChangedAndAnAddendumLinksToIt) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  auto center = ConnectAs(broker_.address(), "ecg-center");
  refclient::ConsultClient township(*clinic), ecg(*center);
  auto requested = township.Request(MakeEcgConsult(kXiyangdian, "imm-1"));
  ASSERT_TRUE(requested.ok()) << requested.status();
  const std::string id = requested->consult().id();
  ASSERT_TRUE(ecg.Transition(Accept(id, "acc-1")).ok());
  auto first = ecg.IssueReport(Report(id, "rpt-1", false));
  ASSERT_TRUE(first.ok()) << first.status();

  auto changed = Report(id, "rpt-2", false);
  changed.mutable_content()->set_opinion("正常心电图");
  auto refused = ecg.IssueReport(changed);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_EQ(refused.status().message().rfind("content.addendum_to:", 0), 0u) << refused.status();

  auto addendum = ecg.IssueReport(Report(id, "rpt-3", false, first->report().id()));
  ASSERT_TRUE(addendum.ok()) << addendum.status();
  EXPECT_EQ(addendum->report().content().addendum_to(), first->report().id());

  auto stored = township.Get(id);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->reports_size(), 2);
  EXPECT_EQ(stored->reports(0).content().opinion(), first->report().content().opinion());
  for (const auto& r : stored->reports()) EXPECT_TRUE(refclient::VerifyReportDigest(r));
  v1::ConsultReport tampered = stored->reports(0);
  tampered.mutable_content()->set_opinion("正常心电图");
  EXPECT_FALSE(refclient::VerifyReportDigest(tampered)) << "the digest check can fail";
  // The requester cannot report on its own consult.
  EXPECT_EQ(township.IssueReport(Report(id, "rpt-4", false, first->report().id())).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(ConsultFlow, ConversionMakesAReferralWhoseAttachmentsAndLinkSurvive) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker_.address(), "people-hospital");
  refclient::ConsultClient township(*clinic);
  v1::Consult consult = MakeEcgConsult(kXiyangdian, "conv-1", v1::URGENT);
  consult.mutable_target()->set_institution(kPeopleHospital);
  consult.mutable_target()->set_service(v1::SPECIALTY_OPINION);
  consult.mutable_target()->set_specialty("cardiology");

  v1::ResultRecord lab;
  lab.set_client_request_id("lis-9");
  lab.set_kind(v1::LAB);
  *lab.mutable_patient() = consult.patient();
  lab.set_performing_institution(kXiyangdian);
  lab.set_item_code("LAB-GLU");
  *lab.mutable_performed_at() = TimeUtil::GetCurrentTime() - TimeUtil::HoursToDuration(3);
  auto* v = lab.add_lab_values();
  v->set_analyte("GLU");
  v->set_value("12.4");
  auto published = refclient::ResultClient(*clinic).Publish(lab);
  ASSERT_TRUE(published.ok()) << published.status();
  consult.add_attached_result_ids(published->result().id());
  auto requested = township.Request(consult);
  ASSERT_TRUE(requested.ok()) << requested.status();
  const std::string id = requested->consult().id();

  v1::ConvertToReferralRequest conv;
  conv.set_consult_id(id);
  conv.set_client_request_id("conv-ref-1");
  conv.mutable_doctor()->set_id("D-1");
  conv.mutable_doctor()->set_name("王医生");
  conv.set_reason("专科意见：需住院进一步诊治");
  conv.set_department("全科");
  auto* dx = conv.add_diagnoses();
  dx->set_code("E11.9");
  dx->set_name("2型糖尿病");
  auto converted = township.Convert(conv);
  ASSERT_TRUE(converted.ok()) << converted.status();
  EXPECT_EQ(converted->consult().converted_referral_id(), converted->referral().id());

  CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 8);
  ASSERT_TRUE(inbox.WaitFor(1, 10));
  const v1::Referral got = inbox.deliveries()[0].referral();
  EXPECT_EQ(got.id(), converted->referral().id());
  EXPECT_EQ(got.converted_from_consult_id(), id);
  ASSERT_EQ(got.attached_result_ids_size(), 1);
  EXPECT_EQ(got.attached_result_ids(0), published->result().id());
  ASSERT_EQ(got.attached_result_verdicts_size(), 1);
  EXPECT_EQ(got.specialty(), "cardiology");
  EXPECT_EQ(got.patient().identifiers(0).value(), consult.patient().identifiers(0).value());
  // Both links survive a read back.
  auto referral = refclient::ReferralClient(*hospital).Get(got.id());
  ASSERT_TRUE(referral.ok()) << referral.status();
  EXPECT_EQ(referral->converted_from_consult_id(), id);
  EXPECT_EQ(township.Get(id)->converted_referral_id(), got.id());
}

}  // namespace
}  // namespace refbroker::testing

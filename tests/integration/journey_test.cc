// The two-way referral through the real broker: a journey up and back down between a township
// and a county hospital that both subscribe, with every update delivered; and decision
// deadlines that escalate once, re-route, and survive a broker restart.

#include <gtest/gtest.h>

#include <set>

#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/scratch_dir.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;
using refclient::Decision;

std::vector<v1::ReferralAction> Actions(CollectingSubscriber& sub) {
  std::vector<v1::ReferralAction> out;
  for (const auto& d : sub.deliveries()) out.push_back(d.referral_update().event().action());
  return out;
}

TEST(Journey, UpAndBackDownWithEveryUpdateDeliveredToBothSides) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  refclient::ReferralClient township(*clinic), county(*hospital);

  CollectingSubscriber township_updates(*clinic, kXiyangdian, "his", 8, nullptr,
                                        v1::REFERRAL_UPDATES);
  CollectingSubscriber county_inbox(*hospital, kPeopleHospital, "his", 8);
  CollectingSubscriber county_updates(*hospital, kPeopleHospital, "his", 8, nullptr,
                                      v1::REFERRAL_UPDATES);

  auto up = township.Submit(MakeReferral(kXiyangdian, "journey-up", v1::URGENT));
  ASSERT_TRUE(up.ok()) << up.status();
  const std::string up_id = up->referral().id();
  ASSERT_TRUE(county_inbox.WaitFor(1, 10));  // the county's system got it and acked
  ASSERT_TRUE(WaitForState(county, up_id, v1::DELIVERED));

  auto accept = Act(up_id, "acc-1");
  accept.mutable_accept()->set_note("心内科 3 床");
  ASSERT_TRUE(county.Transition(accept).ok());
  auto arrive = Act(up_id, "arr-1");
  arrive.mutable_arrive();
  ASSERT_TRUE(county.Transition(arrive).ok());
  auto complete = Act(up_id, "cmp-1");
  complete.mutable_complete()->set_outcome_summary("急诊 PCI 术后，病情稳定，转回基层康复");
  auto done = county.Transition(complete);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->referral().state(), v1::COMPLETED);

  // The township learned every step, in order, ending with the outcome.
  ASSERT_TRUE(township_updates.WaitFor(4, 10));
  EXPECT_EQ(Actions(township_updates),
            (std::vector<v1::ReferralAction>{v1::DELIVER, v1::ACCEPT, v1::ARRIVE, v1::COMPLETE}));
  EXPECT_EQ(township_updates.deliveries()[3].referral_update().event().outcome_summary(),
            "急诊 PCI 术后，病情稳定，转回基层康复");

  // The county continues the journey back down to the township.
  v1::Referral down = up->referral();
  down.clear_id();
  down.clear_state();
  down.clear_journey_id();
  down.clear_decision_deadline();
  down.clear_submitted_at();
  down.clear_updated_at();
  down.set_client_request_id("journey-down");
  down.set_direction(v1::DOWN);
  down.set_priority(v1::ROUTINE);
  down.mutable_from()->set_institution(kPeopleHospital);
  down.mutable_from()->set_department("心内科");
  down.set_to_institution("");
  down.set_continues_referral_id(up_id);
  down.set_down_reason(v1::REHABILITATION);
  down.set_follow_up_plan("二级预防用药；2 周后复查心电图");
  auto down_out = county.Submit(down);
  ASSERT_TRUE(down_out.ok()) << down_out.status();
  EXPECT_EQ(down_out->referral().journey_id(), up->referral().journey_id());
  const std::string down_id = down_out->referral().id();

  CollectingSubscriber township_inbox(*clinic, kXiyangdian, "his", 8);
  ASSERT_TRUE(township_inbox.WaitFor(1, 10));
  EXPECT_EQ(township_inbox.deliveries()[0].referral().id(), down_id);
  ASSERT_TRUE(WaitForState(township, down_id, v1::DELIVERED));
  auto t_accept = Act(down_id, "t-acc");
  t_accept.mutable_accept();
  ASSERT_TRUE(township.Transition(t_accept).ok());
  auto t_arrive = Act(down_id, "t-arr");
  t_arrive.mutable_arrive();
  ASSERT_TRUE(township.Transition(t_arrive).ok());
  ASSERT_TRUE(county_updates.WaitFor(3, 10));  // DELIVER, ACCEPT, ARRIVE of the DOWN leg
  EXPECT_EQ(Actions(county_updates),
            (std::vector<v1::ReferralAction>{v1::DELIVER, v1::ACCEPT, v1::ARRIVE}));

  std::string out;
  ASSERT_EQ(RunRefctl(broker.address(), "referral show " + down_id, &out), 0) << out;
  EXPECT_NE(out.find("2 legs"), std::string::npos) << out;
  EXPECT_NE(out.find("UP leg " + up_id), std::string::npos) << out;
  EXPECT_NE(out.find("DOWN leg " + down_id), std::string::npos) << out;
  EXPECT_NE(out.find("outcome: 急诊 PCI"), std::string::npos) << out;
  EXPECT_NE(out.find("REHABILITATION"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(RunRefctl(broker.address(), "referrals --direction down", &out), 0) << out;
  EXPECT_NE(out.find(down_id), std::string::npos) << out;
  EXPECT_EQ(out.find(up_id), std::string::npos) << out;
}

TEST(Journey, AnIllegalTransitionIsRefusedOverTheWire) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  auto up = refclient::ReferralClient(*clinic).Submit(MakeReferral(kXiyangdian, "x-1"));
  ASSERT_TRUE(up.ok());
  auto accept = Act(up->referral().id(), "a");
  accept.mutable_accept();
  auto s = refclient::ReferralClient(*clinic).Transition(accept).status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  auto complete = Act(up->referral().id(), "c");
  complete.mutable_complete()->set_outcome_summary("x");
  s = refclient::ReferralClient(*hospital).Transition(complete).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("SUBMITTED"), absl::string_view::npos);
}

TEST(Deadline, EscalatesOnceReroutesAndSurvivesARestart) {
  BrokerConfig config;
  config.routine_deadline_s = 2;
  config.reroutes.push_back({kPeopleHospital, "", "12411723417580002E"});
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  refclient::ReferralClient township(*clinic);
  auto late = township.Submit(MakeReferral(kXiyangdian, "late-1"));
  auto decided = township.Submit(MakeReferral(kXiyangdian, "decided-1"));
  ASSERT_TRUE(late.ok() && decided.ok());
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  auto accept = Act(decided->referral().id(), "acc");
  accept.mutable_accept();
  ASSERT_TRUE(refclient::ReferralClient(*hospital).Transition(accept).ok());

  // The broker is down when the deadline passes.
  broker.Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  ASSERT_TRUE(broker.Start().ok());

  auto op = ConnectAs(broker.address(), "operator");
  CollectingSubscriber operator_queue(*op, "pingyu", "ops", 8, nullptr, v1::ALLIANCE);
  ASSERT_TRUE(operator_queue.WaitFor(1, 10));
  auto central = ConnectAs(broker.address(), "central-hospital");
  CollectingSubscriber alternate(*central, "12411723417580002E", "his", 8);
  ASSERT_TRUE(alternate.WaitFor(1, 10));
  EXPECT_EQ(alternate.deliveries()[0].referral().id(), late->referral().id());

  // Another restart must not repeat the escalation.
  ASSERT_EQ(broker.Stop(), 0);
  ASSERT_TRUE(broker.Start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  operator_queue.Stop();
  std::set<uint64_t> escalations;
  for (const auto& d : operator_queue.deliveries()) {
    EXPECT_EQ(d.referral_update().referral_id(), late->referral().id());
    EXPECT_EQ(d.referral_update().event().action(), v1::ESCALATE);
    EXPECT_EQ(d.referral_update().event().rerouted_to(), "12411723417580002E");
    escalations.insert(d.sequence());
  }
  EXPECT_EQ(escalations.size(), 1u);
  auto r = refclient::ReferralClient(*op).Get(late->referral().id());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state(), v1::ESCALATED);
  EXPECT_EQ(r->to_institution(), "12411723417580002E");
  int escalate_events = 0;
  for (const auto& e : r->history()) escalate_events += e.action() == v1::ESCALATE;
  EXPECT_EQ(escalate_events, 1);
  EXPECT_EQ(refclient::ReferralClient(*op).Get(decided->referral().id())->state(), v1::ACCEPTED);
  // The queue listing counts it against the hospital it was re-routed to, until it decides.
  EXPECT_EQ(DeadlineBreaches(*op, "12411723417580002E", v1::REFERRALS), 1);
  EXPECT_EQ(DeadlineBreaches(*central, "12411723417580002E", v1::REFERRALS), 1);
  EXPECT_EQ(DeadlineBreaches(*op, kPeopleHospital, v1::REFERRALS), 0);
  auto accept_late = Act(late->referral().id(), "acc-late");
  accept_late.mutable_accept();
  ASSERT_TRUE(refclient::ReferralClient(*central).Transition(accept_late).ok());
  EXPECT_EQ(DeadlineBreaches(*op, "12411723417580002E", v1::REFERRALS), 0);
}

// A late referral from a partner clinic of another alliance (Shangcai's, allowed to refer to
// Pingyu's People's Hospital) counts where it waits: on the hospital's queue, for the hospital
// and for Pingyu's operator, whose listing shows that queue; not for Shangcai's operator, who
// does not see it.
TEST(Deadline, APartnerClinicsLateReferralCountsOnTheReceivingQueueForItsOperator) {
  const std::string registry = ScratchDir() / "partner-registry.toml";
  WriteTwoAllianceRegistry(registry, {{"cert = \"shangcai-thc\"",
                                       std::string("cert = \"shangcai-thc\"\npartners = [\"") +
                                           kPeopleHospital + "\"]"}});
  BrokerConfig config;
  config.registry_path = registry;
  config.routine_deadline_s = 1;
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());
  auto partner = ConnectAs(broker.address(), "shangcai-thc");
  auto late = refclient::ReferralClient(*partner).Submit(
      MakeReferral("12411722417591101H", "partner-late", v1::ROUTINE, kPeopleHospital));
  ASSERT_TRUE(late.ok()) << late.status();
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  auto op = ConnectAs(broker.address(), "operator");
  auto other_op = ConnectAs(broker.address(), "shangcai-operator");
  int64_t for_hospital = 0;
  for (int i = 0; i < 100 && for_hospital != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for_hospital = DeadlineBreaches(*hospital, kPeopleHospital, v1::REFERRALS);
  }
  ASSERT_EQ(for_hospital, 1);  // escalated
  EXPECT_EQ(DeadlineBreaches(*op, kPeopleHospital, v1::REFERRALS), 1);
  EXPECT_EQ(DeadlineBreaches(*other_op, kPeopleHospital, v1::REFERRALS), -1);  // not listed
  EXPECT_EQ(DeadlineBreaches(*other_op, "12411722417590001L", v1::REFERRALS), 0);
}

}  // namespace
}  // namespace refbroker::testing

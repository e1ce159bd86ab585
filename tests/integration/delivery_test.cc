// Delivery semantics against the real broker: redelivery after the ack deadline, dead letters
// and requeue with refctl, priority order, the window, consumer groups, resume after restart.

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include "client/refclient/referral_client.h"
#include "refbroker/v1/admin.pb.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

using refclient::Decision;

BrokerConfig Config(int ack_deadline_ms, int max_attempts = 3) {
  BrokerConfig c;
  c.ack_deadline_ms = ack_deadline_ms;
  c.max_attempts = max_attempts;
  return c;
}

std::string Submit(refclient::Connection& clinic, const std::string& request_id,
                   refbroker::v1::Priority priority = refbroker::v1::ROUTINE) {
  auto r =
      refclient::ReferralClient(clinic).Submit(MakeReferral(kXiyangdian, request_id, priority));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->referral().id() : "";
}

TEST(Delivery, AnUnackedMessageIsRedeliveredAfterTheDeadline) {
  BrokerProcess broker(Config(800));
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  std::string id = Submit(*clinic, "redeliver-1");
  auto start = std::chrono::steady_clock::now();
  CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 4,
                           [](const auto&) { return Decision::None(); });
  ASSERT_TRUE(sub.WaitFor(2, 10));
  auto elapsed = std::chrono::steady_clock::now() - start;
  auto d = sub.deliveries();
  EXPECT_EQ(d[0].referral().id(), id);
  EXPECT_EQ(d[1].referral().id(), id);
  EXPECT_EQ(d[0].sequence(), d[1].sequence());
  EXPECT_EQ(d[0].attempt(), 1u);
  EXPECT_EQ(d[1].attempt(), 2u);
  EXPECT_GE(elapsed, std::chrono::milliseconds(700));
}

// refclient's Subscriber::Stop while the handler runs: the handler's ack still reaches the
// broker before the stream ends. (Had it been lost, the broker would release the referral when
// the stream ends and hand it to the next consumer again.)
TEST(Delivery, AStoppedSubscriberStillSendsTheDecisionOfItsRunningHandler) {
  BrokerProcess broker(Config(30000, 5));
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  std::string id = Submit(*clinic, "stop-midway-1");
  {
    std::atomic<bool> in_handler{false};
    CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 1, [&](const auto&) {
      in_handler = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      return Decision::Ack();
    });
    for (int i = 0; i < 1000 && !in_handler; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(in_handler);
    sub.Stop();  // while the handler sleeps
    EXPECT_TRUE(sub.result().ok()) << sub.result();
    EXPECT_EQ(sub.deliveries().size(), 1u);
  }
  refclient::ReferralClient client(*clinic);
  EXPECT_TRUE(WaitForState(client, id, refbroker::v1::DELIVERED));
  CollectingSubscriber next(*hospital, kPeopleHospital, "his", 1);
  EXPECT_FALSE(next.WaitFor(1, 2.0)) << "the ack was lost: the referral was delivered again";
}

TEST(Delivery, ANackedMessageBecomesADeadLetterAndRefctlRequeuesIt) {
  BrokerProcess broker(Config(5000, 3));
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  std::string poison = Submit(*clinic, "poison-1");
  std::string fine = Submit(*clinic, "fine-1");
  {
    CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 1, [&](const auto& d) {
      return d.referral().id() == poison ? Decision::Nack("cannot map department")
                                         : Decision::Ack();
    });
    ASSERT_TRUE(sub.WaitFor(4, 10));  // 3 attempts of the poison one, then the next one
    EXPECT_FALSE(sub.WaitFor(5, 1.0));
    auto d = sub.deliveries();
    EXPECT_EQ(d[2].attempt(), 3u);
    EXPECT_EQ(d[3].referral().id(), fine);  // the poison message did not block it
  }
  std::string out;
  ASSERT_EQ(RunRefctl(broker.address(), "--json dlq list", &out), 0) << out;
  EXPECT_NE(out.find(poison), std::string::npos) << out;
  EXPECT_NE(out.find("cannot map department"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(
      RunRefctl(broker.address(),
                "dlq requeue --queue " + std::string(kPeopleHospital) + "/referrals --group his",
                &out),
      0)
      << out;
  EXPECT_NE(out.find("requeued 1"), std::string::npos) << out;
  CollectingSubscriber again(*hospital, kPeopleHospital, "his", 1);
  ASSERT_TRUE(again.WaitFor(1, 10));
  EXPECT_EQ(again.deliveries()[0].referral().id(), poison);
  EXPECT_EQ(again.deliveries()[0].attempt(), 1u);
  again.Stop();
  out.clear();
  ASSERT_EQ(RunRefctl(broker.address(), "dlq list", &out), 0);
  EXPECT_NE(out.find("0 dead letter(s)"), std::string::npos) << out;
}

TEST(Delivery, RefctlRequeuesTheDeadLettersAFileListsAndNoOthers) {
  BrokerProcess broker(Config(5000, 1));
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  std::string keep = Submit(*clinic, "poison-keep");
  std::string retry = Submit(*clinic, "poison-retry");
  // The operator lists the dead letters as JSON (once both nacks are in: the subscriber stays
  // until then) and keeps only the one to retry, as jq would.
  std::string listed;
  refbroker::v1::ListDeadLettersResponse list;
  {
    CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 1,
                             [](const auto&) { return Decision::Nack("cannot map department"); });
    ASSERT_TRUE(sub.WaitFor(2, 10));  // one attempt each, then dead
    for (int i = 0; i < 50 && list.dead_letters_size() < 2; ++i) {
      if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      listed.clear();
      list.Clear();
      ASSERT_EQ(RunRefctl(broker.address(), "--json dlq list", &listed), 0) << listed;
      ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(listed, &list).ok()) << listed;
    }
  }
  ASSERT_EQ(list.dead_letters_size(), 2) << listed;
  refbroker::v1::ListDeadLettersResponse chosen;
  for (const auto& d : list.dead_letters()) {
    if (d.subject_id() == retry) *chosen.add_dead_letters() = d;
  }
  ASSERT_EQ(chosen.dead_letters_size(), 1) << listed;
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(chosen, &json).ok());
  const std::string file = ::testing::TempDir() + "requeue-" + std::to_string(getpid()) + ".json";
  { std::ofstream(file) << json; }
  std::string out;
  ASSERT_EQ(RunRefctl(broker.address(), "dlq requeue --from " + file, &out), 0) << out;
  EXPECT_NE(out.find("requeued 1 message(s) of 1 listed"), std::string::npos) << out;

  CollectingSubscriber again(*hospital, kPeopleHospital, "his", 1);
  ASSERT_TRUE(again.WaitFor(1, 10));
  EXPECT_FALSE(again.WaitFor(2, 1.0));
  EXPECT_EQ(again.deliveries()[0].referral().id(), retry);
  again.Stop();
  out.clear();
  ASSERT_EQ(RunRefctl(broker.address(), "dlq list", &out), 0) << out;
  EXPECT_NE(out.find(keep), std::string::npos) << out;
  EXPECT_NE(out.find("1 dead letter(s)"), std::string::npos) << out;

  // A file that would requeue a whole queue (no sequence) is refused before anything is sent.
  {
    std::ofstream(file) << R"({"dead_letters":[{"queue":{"owner":")" << kPeopleHospital
                        << R"(","kind":"REFERRALS"},"consumer_group":"his"}]})";
  }
  out.clear();
  EXPECT_EQ(RunRefctl(broker.address(), "dlq requeue --from " + file, &out), 2) << out;
  EXPECT_NE(out.find("dead_letters[0].sequence"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(RunRefctl(broker.address(), "dlq list", &out), 0) << out;
  EXPECT_NE(out.find("1 dead letter(s)"), std::string::npos) << out;
  std::remove(file.c_str());
}

TEST(Delivery, EmergencyOvertakesUrgentOvertakesRoutine) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  std::vector<std::string> routine;
  for (int i = 0; i < 4; ++i) routine.push_back(Submit(*clinic, "routine-" + std::to_string(i)));
  std::string urgent = Submit(*clinic, "urgent-1", refbroker::v1::URGENT);
  std::string emergency = Submit(*clinic, "emergency-1", refbroker::v1::EMERGENCY);
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 1);
  ASSERT_TRUE(sub.WaitFor(6, 10));
  auto d = sub.deliveries();
  EXPECT_EQ(d[0].referral().id(), emergency);
  EXPECT_EQ(d[0].priority(), refbroker::v1::EMERGENCY);
  EXPECT_EQ(d[1].referral().id(), urgent);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(d[2 + i].referral().id(), routine[i]);  // FIFO
}

TEST(Delivery, TheBrokerNeverExceedsTheSubscribersWindow) {
  BrokerProcess broker(Config(20000));
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  for (int i = 0; i < 10; ++i) Submit(*clinic, "w-" + std::to_string(i));
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 3,
                           [](const auto&) { return Decision::None(); });
  ASSERT_TRUE(sub.WaitFor(3, 10));
  EXPECT_FALSE(sub.WaitFor(4, 1.5));
  ASSERT_TRUE(sub.Ack(sub.deliveries()[0].sequence()));
  ASSERT_TRUE(sub.WaitFor(4, 10));
  EXPECT_FALSE(sub.WaitFor(5, 1.0));
}

TEST(Delivery, MembersOfAGroupShareTheMessagesAndGroupsEachGetAll) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  std::set<std::string> submitted;
  for (int i = 0; i < 30; ++i) submitted.insert(Submit(*clinic, "g-" + std::to_string(i)));
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  CollectingSubscriber a(*hospital, kPeopleHospital, "his", 2);
  CollectingSubscriber b(*hospital, kPeopleHospital, "his", 2);
  CollectingSubscriber archive(*hospital, kPeopleHospital, "archive", 8);
  ASSERT_TRUE(archive.WaitFor(30, 15));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (a.deliveries().size() + b.deliveries().size() < 30 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::set<std::string> his;
  size_t total = 0;
  for (auto* s : {&a, &b}) {
    for (const auto& d : s->deliveries()) {
      his.insert(d.referral().id());
      total++;
    }
  }
  EXPECT_EQ(his, submitted);
  EXPECT_EQ(total, 30u);  // each message to one member only
  std::set<std::string> archived;
  for (const auto& d : archive.deliveries()) archived.insert(d.referral().id());
  EXPECT_EQ(archived, submitted);
}

TEST(Delivery, AConsumerGroupResumesAfterABrokerRestartWithNothingLost) {
  BrokerProcess broker(Config(1000));
  ASSERT_TRUE(broker.Start().ok());
  std::vector<std::string> ids;
  {
    auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
    for (int i = 0; i < 10; ++i) ids.push_back(Submit(*clinic, "resume-" + std::to_string(i)));
  }
  std::set<std::string> acked_before;
  {
    auto hospital = ConnectAs(broker.address(), "people-hospital");
    int n = 0;
    CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 1, [&](const auto& d) {
      if (n++ < 4) {
        acked_before.insert(d.referral().id());
        return Decision::Ack();
      }
      return Decision::None();
    });
    ASSERT_TRUE(sub.WaitFor(5, 10));  // the 5th arrives only after the 4th ack is durable
  }
  ASSERT_EQ(broker.Stop(), 0);
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  ids.push_back(Submit(*clinic, "resume-10"));
  ids.push_back(Submit(*clinic, "resume-11"));
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 4);
  ASSERT_TRUE(sub.WaitFor(8, 15));
  EXPECT_FALSE(sub.WaitFor(9, 1.5));
  std::set<std::string> after;
  for (const auto& d : sub.deliveries()) after.insert(d.referral().id());
  for (const auto& id : acked_before) EXPECT_EQ(after.count(id), 0u) << "acked before: " << id;
  std::set<std::string> all(acked_before);
  all.insert(after.begin(), after.end());
  EXPECT_EQ(all, std::set<std::string>(ids.begin(), ids.end()));
}

}  // namespace
}  // namespace refbroker::testing

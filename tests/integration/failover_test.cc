// A client that knows several brokers moves on from one that is down (issue: several brokers):
// whether the broker was down before the first call, died between two calls or dies under a
// subscriber. Waiting on a dead broker until the deadline and retrying it, as a client that
// waits for its channel to become ready does, would leave a clinic's referral unsent for
// minutes while another broker is up.
//
// The brokers here keep separate SQLite stores: what is tested is the client's choice of
// broker (one shared PostgreSQL store is multi_broker_test.cc's).

#include <gtest/gtest.h>

#include <chrono>

#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;
using Clock = std::chrono::steady_clock;

// Short calls, enough attempts to reach the second broker: a client that never moves on
// fails after 5 × 1 s.
refclient::RetryPolicy ShortCalls() {
  refclient::RetryPolicy retry;
  retry.max_attempts = 5;
  retry.per_call_timeout = std::chrono::milliseconds(1000);
  retry.max_backoff = std::chrono::milliseconds(200);
  return retry;
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class Failover : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(a_.Start().ok()) << a_.log_path();
    ASSERT_TRUE(b_.Start().ok()) << b_.log_path();
  }
  BrokerProcess a_, b_;
};

TEST_F(Failover, ASubmitWhoseFirstBrokerIsDownGoesToTheNext) {
  a_.Kill();
  auto clinic = ConnectToBrokers({a_.address(), b_.address()}, "xiyangdian-thc");
  refclient::ReferralClient client(*clinic, ShortCalls());
  auto start = Clock::now();
  auto r = client.Submit(MakeReferral(kXiyangdian, "failover-down-1"));
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("first broker down: accepted by the second after %.2f s\n", SecondsSince(start));
  EXPECT_EQ(clinic->current_target(), b_.address());
  EXPECT_LT(SecondsSince(start), 3.0);
}

TEST_F(Failover, ASubmitAfterItsBrokerDiedBetweenCallsGoesToTheNext) {
  auto clinic = ConnectToBrokers({a_.address(), b_.address()}, "xiyangdian-thc");
  refclient::ReferralClient client(*clinic, ShortCalls());
  auto first = client.Submit(MakeReferral(kXiyangdian, "failover-between-1"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(clinic->current_target(), a_.address());
  a_.Kill();
  auto start = Clock::now();
  auto r = client.Submit(MakeReferral(kXiyangdian, "failover-between-2"));
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("broker died between calls: accepted by the second after %.2f s\n",
              SecondsSince(start));
  EXPECT_EQ(clinic->current_target(), b_.address());
  EXPECT_LT(SecondsSince(start), 3.0);
}

TEST_F(Failover, ASubscriberWhoseFirstBrokerIsDownSubscribesOnTheNext) {
  a_.Kill();
  auto hospital = ConnectToBrokers({a_.address(), b_.address()}, "people-hospital");
  CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 4);
  auto clinic = ConnectAs(b_.address(), "xiyangdian-thc");
  auto r = refclient::ReferralClient(*clinic).Submit(
      MakeReferral(kXiyangdian, "failover-subscriber-1", v1::ROUTINE, kPeopleHospital));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(inbox.WaitFor(1, 10)) << "the subscriber never left the broker that is down";
}

// With one broker the subscriber waits for it to come back; Stop still ends that wait.
TEST_F(Failover, AStoppedSubscriberWhoseOnlyBrokerIsDownEndsPromptly) {
  a_.Kill();
  auto hospital = ConnectToBrokers({a_.address()}, "people-hospital");
  auto inbox = std::make_unique<CollectingSubscriber>(*hospital, kPeopleHospital, "his", 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // waiting for the broker
  auto start = Clock::now();
  inbox.reset();  // stops and joins
  std::printf("subscriber waiting for a broker that is down stopped in %.2f s\n",
              SecondsSince(start));
  EXPECT_LT(SecondsSince(start), 3.0);
}

TEST_F(Failover, ASubscriberWhoseBrokerDiesResubscribesOnTheNext) {
  auto hospital = ConnectToBrokers({a_.address(), b_.address()}, "people-hospital");
  CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 4);
  auto clinic_a = ConnectAs(a_.address(), "xiyangdian-thc");
  auto first = refclient::ReferralClient(*clinic_a).Submit(
      MakeReferral(kXiyangdian, "failover-subscriber-2", v1::ROUTINE, kPeopleHospital));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(inbox.WaitFor(1, 10));
  a_.Kill();
  auto clinic_b = ConnectAs(b_.address(), "xiyangdian-thc");
  auto r = refclient::ReferralClient(*clinic_b).Submit(
      MakeReferral(kXiyangdian, "failover-subscriber-3", v1::ROUTINE, kPeopleHospital));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(inbox.WaitFor(2, 10)) << "the subscriber did not move to the broker that is up";
}

}  // namespace
}  // namespace refbroker::testing

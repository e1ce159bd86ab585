// Pauses under load: the broker frozen (SIGSTOP) for longer than the ack deadline and thawed
// (SIGCONT) while clinics submit and a hospital consumes; and a consumer that stalls holding
// its leases while another member of its group carries on. Then a full drain and the checks of
// the fault harness: lost (acknowledged, never delivered) = 0, unexpected (delivered, never
// submitted) = 0, duplicates counted and reported, and first deliveries of the queue in order.

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

// What a hospital's system saw: every delivery in arrival order.
struct Seen {
  std::mutex mu;
  std::vector<std::pair<std::string, uint64_t>> deliveries;  // (client_request_id, sequence)
  void Add(const v1::Delivery& d) {
    std::lock_guard<std::mutex> lock(mu);
    deliveries.emplace_back(d.referral().client_request_id(), d.sequence());
  }
};

struct Verdict {
  size_t lost = 0, unexpected = 0, duplicates = 0, out_of_order = 0;
};

Verdict Check(const std::set<std::string>& acknowledged, const std::set<std::string>& submitted,
              Seen& seen) {
  std::lock_guard<std::mutex> lock(seen.mu);
  Verdict v;
  std::map<std::string, int> times;
  uint64_t last_first_seq = 0;
  for (const auto& [request_id, seq] : seen.deliveries) {
    if (times[request_id]++ > 0) {
      v.duplicates++;
      continue;
    }
    if (seq < last_first_seq) v.out_of_order++;  // first deliveries follow the queue's order
    last_first_seq = seq;
    if (!submitted.count(request_id)) v.unexpected++;
  }
  for (const auto& id : acknowledged) v.lost += times.count(id) ? 0 : 1;
  return v;
}

TEST(Pause, TheBrokerFrozenLongerThanTheAckDeadlineLosesNothing) {
  BrokerConfig config;
  config.ack_deadline_ms = 1000;
  config.max_attempts = 1000;
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());
  std::mutex mu;
  std::set<std::string> acknowledged, submitted;  // client request ids
  std::atomic<bool> stop{false};
  std::vector<std::thread> clinics;
  for (const auto& [stem, code] :
       {std::pair{"xiyangdian-thc", kXiyangdian}, std::pair{"guhuai-thc", kGuhuai}}) {
    clinics.emplace_back([&, stem = std::string(stem), code = std::string(code)] {
      auto conn = ConnectAs(broker.address(), stem);
      refclient::RetryPolicy retry;
      retry.max_attempts = 100;
      retry.per_call_timeout = std::chrono::milliseconds(1500);
      refclient::ReferralClient client(*conn, retry);
      for (int i = 0; !stop; ++i) {
        std::string request_id = stem + "-" + std::to_string(i);
        {
          std::lock_guard<std::mutex> lock(mu);
          submitted.insert(request_id);
        }
        auto out = client.Submit(MakeReferral(code, request_id, v1::ROUTINE, kPeopleHospital));
        if (out.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.insert(request_id);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  Seen seen;
  CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 8, [&seen](const v1::Delivery& d) {
    seen.Add(d);
    return refclient::Decision::Ack();
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_EQ(kill(broker.pid(), SIGSTOP), 0);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // three ack deadlines
  ASSERT_EQ(kill(broker.pid(), SIGCONT), 0);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  stop = true;
  for (auto& t : clinics) t.join();
  Verdict v;
  for (int i = 0; i < 200; ++i) {  // drain
    v = Check(acknowledged, submitted, seen);
    if (v.lost == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  inbox.Stop();
  std::printf(
      "pause (broker SIGSTOP 3 s): submitted=%zu acknowledged=%zu lost=%zu unexpected=%zu "
      "duplicates=%zu out_of_order=%zu\n",
      submitted.size(), acknowledged.size(), v.lost, v.unexpected, v.duplicates, v.out_of_order);
  EXPECT_GT(acknowledged.size(), 100u);
  EXPECT_EQ(v.lost, 0u);
  EXPECT_EQ(v.unexpected, 0u);
  EXPECT_EQ(v.out_of_order, 0u);
}

TEST(Pause, AStalledConsumerLosesItsLeasesToTheRestOfItsGroup) {
  BrokerConfig config;
  config.ack_deadline_ms = 1000;
  config.max_attempts = 1000;
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  auto hospital2 = ConnectAs(broker.address(), "people-hospital");
  Seen seen;
  std::atomic<int> stalled{0};
  // A stalls for 3 s on its first delivery (a frozen process keeps its connection), then acks.
  CollectingSubscriber a(*hospital, kPeopleHospital, "his", 4, [&](const v1::Delivery& d) {
    if (stalled++ == 0) std::this_thread::sleep_for(std::chrono::seconds(3));
    seen.Add(d);
    return refclient::Decision::Ack();
  });
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  refclient::ReferralClient client(*clinic);
  std::set<std::string> acknowledged;
  for (int i = 0; i < 40; ++i) {
    std::string id = "stall-" + std::to_string(i);
    ASSERT_TRUE(client.Submit(MakeReferral(kXiyangdian, id, v1::ROUTINE, kPeopleHospital)).ok());
    acknowledged.insert(id);
    if (i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));  // A takes it
  }
  CollectingSubscriber b(*hospital2, kPeopleHospital, "his", 4, [&](const v1::Delivery& d) {
    seen.Add(d);
    return refclient::Decision::Ack();
  });
  Verdict v;
  for (int i = 0; i < 200; ++i) {
    v = Check(acknowledged, acknowledged, seen);
    if (v.lost == 0 && stalled > 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  a.Stop();
  b.Stop();
  std::printf(
      "pause (consumer stalled 3 s): acknowledged=%zu lost=%zu unexpected=%zu "
      "duplicates=%zu\n",
      acknowledged.size(), v.lost, v.unexpected, v.duplicates);
  EXPECT_EQ(v.lost, 0u);
  EXPECT_EQ(v.unexpected, 0u);
  EXPECT_GE(b.deliveries().size(), 30u) << "the rest of the group carried the queue";
}

}  // namespace
}  // namespace refbroker::testing

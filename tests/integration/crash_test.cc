// Crash test: clinics submit referrals (and every fourth time also request an ECG reading)
// while the broker is killed with SIGKILL again and again and restarted on the same data;
// hospitals and the ECG center subscribe throughout. At the end every queue is drained and
// every referral and consult the broker acknowledged must have been delivered.
//
// Two faults, the same check: SIGKILL (the process dies; what it wrote is in the page cache),
// and power loss (SIGKILL, then every write to the store's files that no fsync had covered is
// dropped: tests/faults/power_loss.h), as in Jepsen's test of NATS, which lost acknowledged
// messages this way because it acknowledged before fsync.
//
// REFBROKER_CRASH_KILLS (default 10) sets the number of kills; the soak label runs more.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "client/refclient/consult_client.h"
#include "client/refclient/referral_client.h"
#include "tests/faults/power_loss.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

const char* kClinics[][2] = {{"xiyangdian-thc", "124117234175811018"},
                             {"guhuai-thc", "12411723417581102B"},
                             {"yuhuangmiao-thc", "12411723417581103E"},
                             {"dongheyan-thc", "12411723417581104H"}};
const char* kHospitals[][2] = {{"people-hospital", "12411723417580001B"},
                               {"central-hospital", "12411723417580002E"},
                               {"mch-hospital", "12411723417580003H"},
                               {"tcm-hospital", "12411723417580004L"}};

int Kills() {
  const char* v = std::getenv("REFBROKER_CRASH_KILLS");
  return v ? std::max(1, std::atoi(v)) : 10;
}

enum class Fault { kSigkill, kPowerLoss };

class Crash : public ::testing::TestWithParam<Fault> {};

TEST_P(Crash, EveryAcknowledgedReferralIsDelivered) {
  const bool power_loss = GetParam() == Fault::kPowerLoss;
  BrokerConfig config;
  config.ack_deadline_ms = 1500;
  config.max_attempts = 1000;  // crashes must not turn messages into dead letters
  if (power_loss) {
    config.env = {std::string("LD_PRELOAD=") + REFBROKER_FAULT_SHIM,
                  "ASAN_OPTIONS=verify_asan_link_order=0", "REFBROKER_POWERLOSS_UNDO=1",
                  "REFBROKER_FAULT_TARGET=/refbroker.db"};
  }
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());

  std::mutex mu;
  std::set<std::string> acked;      // referral and consult ids the broker acknowledged
  std::set<std::string> requested;  // client request ids of every submission attempted
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> submitted{0}, failed{0};

  std::vector<std::thread> clinics;
  for (int c = 0; c < 4; ++c) {
    clinics.emplace_back([&, c] {
      auto conn = ConnectAs(broker.address(), kClinics[c][0]);
      refclient::RetryPolicy retry;
      retry.max_attempts = 1000;  // keep retrying through restarts, same request id
      retry.per_call_timeout = std::chrono::milliseconds(5000);
      refclient::ReferralClient client(*conn, retry);
      refclient::ConsultClient consults(*conn, retry);
      std::mt19937 rng(c);
      for (int i = 0; !stop; ++i) {
        if (i % 4 == 0) {
          submitted++;
          std::string request_id = std::string(kClinics[c][0]) + "-con-" + std::to_string(i);
          {
            std::lock_guard<std::mutex> lock(mu);
            requested.insert(request_id);
          }
          auto con = consults.Request(MakeEcgConsult(kClinics[c][1], request_id));
          if (con.ok()) {
            std::lock_guard<std::mutex> lock(mu);
            acked.insert(con->consult().id());
          } else {
            failed++;
          }
        }
        auto referral =
            MakeReferral(kClinics[c][1], std::string(kClinics[c][0]) + "-" + std::to_string(i),
                         refbroker::v1::ROUTINE, kHospitals[rng() % 4][1]);
        submitted++;
        {
          std::lock_guard<std::mutex> lock(mu);
          requested.insert(referral.client_request_id());
        }
        auto r = client.Submit(referral);
        if (r.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          acked.insert(r->referral().id());
        } else {
          failed++;
        }
      }
    });
  }

  std::mutex dmu;
  std::map<std::string, int> delivered;      // referral id → times delivered
  std::set<std::string> delivered_requests;  // their client request ids
  std::vector<std::unique_ptr<refclient::Connection>> hconns;
  std::vector<std::unique_ptr<CollectingSubscriber>> subs;
  auto record = [&](const refbroker::v1::Delivery& d) {
    std::lock_guard<std::mutex> lock(dmu);
    delivered[d.has_consult() ? d.consult().id() : d.referral().id()]++;
    delivered_requests.insert(d.has_consult() ? d.consult().client_request_id()
                                              : d.referral().client_request_id());
    return refclient::Decision::Ack();
  };
  for (auto& h : kHospitals) {
    hconns.push_back(ConnectAs(broker.address(), h[0]));
    subs.push_back(std::make_unique<CollectingSubscriber>(*hconns.back(), h[1], "his", 16, record));
  }
  hconns.push_back(ConnectAs(broker.address(), "ecg-center"));
  subs.push_back(std::make_unique<CollectingSubscriber>(
      *hconns.back(), kEcgCenter, "reading-stations", 16, record, refbroker::v1::CONSULTS));

  std::mt19937 rng(12345);
  const int kills = Kills();
  uint64_t dropped_writes = 0, dropped_bytes = 0;  // power loss: unsynced writes undone
  bool restarted = true;
  for (int k = 0; k < kills && restarted; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 700));
    broker.Kill();
    if (power_loss) {
      auto dropped = DropUnsyncedWrites(broker.dir());
      EXPECT_TRUE(dropped.ok()) << dropped.status();
      if (dropped.ok()) {
        dropped_writes += dropped->writes;
        dropped_bytes += dropped->bytes;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 200));
    absl::Status s = broker.Start();
    restarted = s.ok();
    // Not ASSERT: the clinic threads must be stopped and joined before the test returns.
    EXPECT_TRUE(restarted) << "restart " << k << " failed: " << s << "; see " << broker.log_path();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  if (!restarted) {
    // Nothing answers: give the clients' retries a broker again so that they can finish.
    (void)broker.Start();
  }
  for (auto& t : clinics) t.join();

  // Drain: wait until every acknowledged referral has been delivered.
  auto missing = [&] {
    std::lock_guard<std::mutex> l1(mu);
    std::lock_guard<std::mutex> l2(dmu);
    size_t n = 0;
    for (const auto& id : acked) n += delivered.count(id) ? 0 : 1;
    return n;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (missing() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& s : subs) s->Stop();

  // Every referral its hospital acked is DELIVERED: the transition commits with the ack, so no
  // kill (nor a power loss) leaves an acked referral SUBMITTED. (Stop returned after the broker
  // had processed every ack sent before it.)
  const int64_t acked_but_submitted = broker.CountRows(
      "group_messages g JOIN messages m ON m.seq = g.seq JOIN referrals r ON r.id = m.subject_id "
      "WHERE g.state = 2 AND r.state = 1 AND m.queue = r.receiver || '/referrals'");

  // unexpected: delivered but never submitted (by request id); stored_unacknowledged: stored
  // but its acknowledgement was cut by a kill (the client's retry then got the original).
  size_t lost = missing(), duplicates = 0, stored_unacknowledged = 0, unexpected = 0;
  for (const auto& request_id : delivered_requests)
    unexpected += requested.count(request_id) ? 0 : 1;
  for (const auto& [id, n] : delivered) {
    duplicates += n - 1;
    stored_unacknowledged += acked.count(id) ? 0 : 1;
  }
  std::printf(
      "fault harness: fault=%s kills=%d submitted=%llu acknowledged=%zu delivered=%zu "
      "stored_unacknowledged=%zu failed_after_retries=%llu unsynced_writes_dropped=%llu "
      "(%llu bytes)\n",
      power_loss ? "power-loss" : "sigkill", kills,
      static_cast<unsigned long long>(submitted.load()), acked.size(), delivered.size(),
      stored_unacknowledged, static_cast<unsigned long long>(failed.load()),
      static_cast<unsigned long long>(dropped_writes),
      static_cast<unsigned long long>(dropped_bytes));
  size_t consults_acked = 0;
  for (const auto& id : acked) consults_acked += id.rfind("con-", 0) == 0 ? 1 : 0;
  std::printf(
      "lost=%zu unexpected=%zu duplicates=%zu (acknowledged consults: %zu) "
      "acked_but_not_delivered_state=%lld\n",
      lost, unexpected, duplicates, consults_acked, static_cast<long long>(acked_but_submitted));
  EXPECT_GT(consults_acked, 10u) << "consults must be part of the load";
  EXPECT_GT(acked.size(), 50u) << "too little traffic to mean anything";
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(unexpected, 0u);
  EXPECT_EQ(acked_but_submitted, 0) << "referrals acked by their hospital but not DELIVERED";
}

INSTANTIATE_TEST_SUITE_P(Faults, Crash, ::testing::Values(Fault::kSigkill, Fault::kPowerLoss),
                         [](const auto& param_info) {
                           return param_info.param == Fault::kSigkill ? "Sigkill" : "PowerLoss";
                         });

}  // namespace
}  // namespace refbroker::testing

// Fairness under load: one clinic floods the broker from several threads at ten times its call
// rate; it gets RESOURCE_EXHAUSTED beyond that rate, while another clinic's submit latency
// (median) stays within 2× of what it was without the flood. Also the per-principal stream limit.
//
// The flood is paced (1,000 calls/s in all, 10× limits.calls_per_second): in the field a runaway
// client runs on its own machine, and an unpaced loop in this test process would measure this
// 2-core machine's CPU shared between the test's own client threads and the broker, not the
// broker's fairness.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>

#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/sanitizers.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

// Median submit latency (ms) of `n` referrals from Guhuai, one every 25 ms (40 calls/s: well
// under its own limit, so that any refusal would be unfair).
double MedianSubmitMs(refclient::ReferralClient& client, const std::string& tag, int n,
                      int* errors) {
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto out = client.Submit(
        MakeReferral(kGuhuai, tag + "-" + std::to_string(i), v1::ROUTINE, kPeopleHospital));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
    if (!out.ok()) ++*errors;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

TEST(Fairness, AFloodingClinicIsLimitedAndTheOthersKeepTheirLatency) {
  BrokerConfig config;
  config.extra_toml = "[limits]\ncalls_per_second = 100\nburst = 50\nmax_streams = 4\n";
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());
  auto guhuai = ConnectAs(broker.address(), "guhuai-thc");
  refclient::RetryPolicy no_retry;  // a refusal must show, not hide in a retry's latency
  no_retry.max_attempts = 1;
  refclient::ReferralClient quiet(*guhuai, no_retry);
  int errors = 0;
  MedianSubmitMs(quiet, "warm", 20, &errors);
  double unloaded = MedianSubmitMs(quiet, "unloaded", 60, &errors);

  std::atomic<bool> stop{false};
  std::atomic<int> accepted{0}, limited{0}, other{0};
  std::vector<std::thread> flood;
  auto flooder = ConnectAs(broker.address(), "xiyangdian-thc");
  refclient::RetryPolicy once;
  once.max_attempts = 1;
  auto start = std::chrono::steady_clock::now();
  // Many threads, each paced: an accepted call waits for its commit (tens of ms on PostgreSQL
  // under load), and a thread that waits falls behind while the others keep the rate.
  constexpr int kFloodThreads = 16;
  constexpr auto kFloodInterval = std::chrono::microseconds(1'000'000 * kFloodThreads / 1000);
  for (int t = 0; t < kFloodThreads; ++t) {
    flood.emplace_back([&, t] {
      refclient::ReferralClient loud(*flooder, once);
      auto next = std::chrono::steady_clock::now();
      for (int i = 0; !stop; ++i) {
        next += kFloodInterval;
        std::this_thread::sleep_until(next);
        auto out = loud.Submit(
            MakeReferral(kXiyangdian, "flood-" + std::to_string(t) + "-" + std::to_string(i)));
        if (out.ok()) {
          accepted++;
        } else if (absl::IsResourceExhausted(out.status())) {
          limited++;
        } else {
          other++;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the burst is spent
  double loaded = MedianSubmitMs(quiet, "loaded", 60, &errors);
  stop = true;
  for (auto& t : flood) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "fairness: quiet clinic median submit %.2f ms unloaded, %.2f ms during the flood "
      "(ratio %.2f); flooding clinic: %d accepted, %d RESOURCE_EXHAUSTED in %.1f s\n",
      unloaded, loaded, loaded / unloaded, accepted.load(), limited.load(), seconds);
  EXPECT_EQ(errors, 0) << "the quiet clinic was refused";
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(limited.load(), 0);
  // It was a flood: well beyond the clinic's 100 calls/s.
  EXPECT_GE(accepted.load() + limited.load(), static_cast<int>(400 * seconds));
  EXPECT_LE(accepted.load(), 50 + static_cast<int>(100 * seconds) + 20);
#if REFBROKER_UNDER_ASAN
  // Under ASan every call costs several times more CPU on both sides of this 2-core machine: the
  // latency target is measured by the release run; here the limits themselves are checked.
#else
  EXPECT_LE(loaded, 2 * unloaded) << "the others' latency must stay within 2x";
#endif
}

TEST(Fairness, APrincipalHasAtMostMaxStreamsOpen) {
  BrokerConfig config;
  config.extra_toml = "[limits]\nmax_streams = 2\n";
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  CollectingSubscriber first(*hospital, kPeopleHospital, "his", 1);
  CollectingSubscriber second(*hospital, kPeopleHospital, "his", 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto stub = v1::DeliveryService::NewStub(hospital->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  auto stream = stub->Subscribe(&ctx);
  v1::SubscribeRequest open;
  open.mutable_open()->mutable_queue()->set_owner(kPeopleHospital);
  open.mutable_open()->mutable_queue()->set_kind(v1::REFERRALS);
  open.mutable_open()->set_consumer_group("his");
  stream->Write(open);
  v1::Delivery d;
  EXPECT_FALSE(stream->Read(&d));
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("max_streams"), std::string::npos) << s.error_message();
  // Another institution is not affected.
  auto other = ConnectAs(broker.address(), "tcm-hospital");
  CollectingSubscriber third(*other, kTcmHospital, "his", 1);
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  ASSERT_TRUE(refclient::ReferralClient(*clinic)
                  .Submit(MakeReferral(kXiyangdian, "to-tcm", v1::ROUTINE, kTcmHospital))
                  .ok());
  EXPECT_TRUE(third.WaitFor(1, 10));
}

}  // namespace
}  // namespace refbroker::testing

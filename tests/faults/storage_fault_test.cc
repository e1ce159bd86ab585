// Storage faults injected under the real broker (fault_shim.c, loaded with LD_PRELOAD): an
// fsync that fails is latched — health turns NOT_SERVING and nothing more is acknowledged, even
// after the disk recovers, until a restart; a full disk answers RESOURCE_EXHAUSTED without a
// false acknowledgement, reads keep working, and writes resume by themselves when space
// returns. In both, every referral acknowledged before is there after a restart.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "client/refclient/admin_client.h"
#include "client/refclient/referral_client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

class StorageFault : public ::testing::Test {
 protected:
  void SetUp() override {
    faults_ = std::filesystem::temp_directory_path() /
              ("faults-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(faults_);
    BrokerConfig config;
    config.ack_deadline_ms = 30000;
    // (Under the asan preset the shim comes before ASan's runtime, which ASan accepts when told.)
    config.env = {std::string("LD_PRELOAD=") + REFBROKER_FAULT_SHIM,
                  "ASAN_OPTIONS=verify_asan_link_order=0", "REFBROKER_FAULT_DIR=" + faults_,
                  "REFBROKER_FAULT_TARGET=/refbroker.db"};
    broker_ = std::make_unique<BrokerProcess>(config);
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log_path();
    conn_ = ConnectAs(broker_->address(), "xiyangdian-thc");
  }
  void TearDown() override {
    conn_.reset();
    broker_.reset();
    std::filesystem::remove_all(faults_);
  }
  void Inject(const char* fault) { std::ofstream(faults_ + "/" + fault) << "on\n"; }
  void Clear(const char* fault) { std::filesystem::remove(faults_ + "/" + fault); }

  absl::StatusOr<std::string> Submit(const std::string& request_id) {
    refclient::RetryPolicy once;
    once.max_attempts = 1;
    auto out = refclient::ReferralClient(*conn_, once)
                   .Submit(MakeReferral(kXiyangdian, request_id, v1::ROUTINE, kPeopleHospital));
    if (!out.ok()) return out.status();
    return out->referral().id();
  }
  grpc::health::v1::HealthCheckResponse::ServingStatus Health() {
    auto stub = grpc::health::v1::Health::NewStub(conn_->channel());
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    grpc::health::v1::HealthCheckResponse resp;
    stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
    return resp.status();
  }
  bool WaitForHealth(grpc::health::v1::HealthCheckResponse::ServingStatus want) {
    for (int i = 0; i < 100; ++i) {
      if (Health() == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  // After a restart without the fault, every acknowledged referral is there.
  void ExpectAllThereAfterRestart(const std::vector<std::string>& acknowledged) {
    broker_->Kill();
    Clear("fsync-eio");
    Clear("enospc");
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log_path();
    conn_ = ConnectAs(broker_->address(), "xiyangdian-thc");
    refclient::ReferralClient client(*conn_);
    for (const auto& id : acknowledged) EXPECT_TRUE(client.Get(id).ok()) << id;
    auto hospital = ConnectAs(broker_->address(), "people-hospital");
    CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 64);
    EXPECT_TRUE(inbox.WaitFor(acknowledged.size(), 20));
    std::set<std::string> delivered;
    for (const auto& d : inbox.deliveries()) delivered.insert(d.referral().id());
    size_t lost = 0;
    for (const auto& id : acknowledged) lost += delivered.count(id) == 0;
    std::printf("acknowledged %zu, delivered after restart %zu, lost %zu\n", acknowledged.size(),
                delivered.size(), lost);
    EXPECT_EQ(lost, 0u);
  }

  static int counter_;
  std::string faults_;
  std::unique_ptr<BrokerProcess> broker_;
  std::unique_ptr<refclient::Connection> conn_;
};
int StorageFault::counter_ = 0;

TEST_F(StorageFault, AFailedFsyncIsLatchedNotServingAndNothingMoreIsAcknowledged) {
  std::vector<std::string> acknowledged;
  for (int i = 0; i < 20; ++i) {
    auto id = Submit("before-" + std::to_string(i));
    ASSERT_TRUE(id.ok()) << id.status();
    acknowledged.push_back(*id);
  }
  Inject("fsync-eio");
  int refused = 0;
  for (int i = 0; i < 10; ++i) {
    auto id = Submit("during-" + std::to_string(i));
    if (id.ok()) {
      ADD_FAILURE() << "acknowledged while fsync fails: " << *id;
      acknowledged.push_back(*id);
    } else {
      ++refused;
      EXPECT_TRUE(absl::IsUnavailable(id.status()) || absl::IsInternal(id.status())) << id.status();
    }
  }
  EXPECT_EQ(refused, 10);
  EXPECT_TRUE(WaitForHealth(grpc::health::v1::HealthCheckResponse::NOT_SERVING));
  // The disk "recovers": the broker does not trust it again until it is restarted.
  Clear("fsync-eio");
  auto after = Submit("after-recovery");
  EXPECT_FALSE(after.ok()) << "the fsync error must stay latched";
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  ExpectAllThereAfterRestart(acknowledged);
}

TEST_F(StorageFault, AFullDiskIsResourceExhaustedReadsWorkAndWritesResumeWhenSpaceReturns) {
  std::vector<std::string> acknowledged;
  for (int i = 0; i < 10; ++i) {
    auto id = Submit("before-" + std::to_string(i));
    ASSERT_TRUE(id.ok()) << id.status();
    acknowledged.push_back(*id);
  }
  Inject("enospc");
  for (int i = 0; i < 5; ++i) {
    auto id = Submit("full-" + std::to_string(i));
    ASSERT_FALSE(id.ok()) << "acknowledged on a full disk: " << *id;
    EXPECT_TRUE(absl::IsResourceExhausted(id.status())) << id.status();
  }
  // Reads still work.
  auto read = refclient::ReferralClient(*conn_).Get(acknowledged.front());
  EXPECT_TRUE(read.ok()) << read.status();
  // Space returns: writes resume without a restart.
  Clear("enospc");
  auto resumed = Submit("after-space");
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  acknowledged.push_back(*resumed);
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
  // The read's audit entry, held in memory while the disk was full, is recorded now.
  auto auditor = ConnectAs(broker_->address(), "auditor");
  v1::SearchAuditRequest search;
  search.set_subject(acknowledged.front());
  bool recorded = false;
  for (int i = 0; i < 60 && !recorded; ++i) {
    auto found = refclient::AdminClient(*auditor).SearchAudit(search);
    ASSERT_TRUE(found.ok()) << found.status();
    for (const auto& e : found->entries()) recorded = recorded || e.action() == "GetReferral";
    if (!recorded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(recorded) << "the read on the full disk left no audit entry";
  ExpectAllThereAfterRestart(acknowledged);
}

}  // namespace
}  // namespace refbroker::testing

#pragma once
// A ReferralWorkflow over a real SqliteStore in a temporary directory, the sample registry
// and a controllable clock: for unit tests of the referral workflow.

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "broker/auth/access_policy.h"
#include "broker/auth/registry.h"
#include "broker/domain/referral_workflow.h"
#include "broker/routing/referral_router.h"
#include "broker/storage/sqlite_store.h"
#include "client/sim/synthetic_referral.h"
#include "refbroker/v1/delivery.pb.h"

namespace refbroker::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(Micros start) : now_(start) {}
  Micros Now() const override { return now_.load(); }
  void Advance(Micros d) { now_ += d; }

 private:
  std::atomic<Micros> now_;
};

class WorkflowFixture : public ::testing::Test {
 protected:
  static constexpr Micros kStart = 1795000000LL * 1000000;
  static constexpr char kClinic[] = "124117234175811018";       // 西洋店镇卫生院
  static constexpr char kOtherClinic[] = "12411723417581102B";  // 古槐街道卫生院
  static constexpr char kHospital[] = "12411723417580001B";     // 平舆县人民医院
  static constexpr char kAlternate[] = "12411723417580002E";    // 平舆县中心医院
  static constexpr char kOperator[] = "OP-PINGYU-XXK-01";

  void SetUp() override { Open(domain::WorkflowOptions()); }
  void TearDown() override {
    workflow_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Open(domain::WorkflowOptions options) {
    workflow_.reset();
    store_.reset();
    if (dir_.empty()) {
      dir_ = (std::filesystem::temp_directory_path() /
              ("refbroker-wf-" + std::to_string(getpid()) + "-" + std::to_string(counter_++)))
                 .string();
      std::filesystem::remove_all(dir_);
      std::filesystem::create_directories(dir_);
    }
    if (!registry_) {
      auto reg =
          auth::Registry::LoadFile(std::string(REFBROKER_SOURCE_DIR) + "/deploy/registry.toml");
      ASSERT_TRUE(reg.ok()) << reg.status();
      registry_ = std::move(*reg);
      policy_ = std::make_unique<auth::AccessPolicy>(*registry_);
      router_ = std::make_unique<routing::ReferralRouter>(*registry_);
    }
    storage::SqliteOptions so;
    so.path = dir_ + "/store.db";
    auto store = storage::SqliteStore::Open(so);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    domain::ReferralWorkflow::Hooks hooks;
    hooks.notify = [this](const std::string& q) { notified_.push_back(q); };
    workflow_ = std::make_unique<domain::ReferralWorkflow>(*store_, *policy_, *router_, clock_,
                                                           std::move(options), hooks);
  }

  const auth::Principal& P(const std::string& id) { return *registry_->Find(id); }

  refbroker::v1::Referral NewReferral(const std::string& request_id,
                                      refbroker::v1::Priority p = refbroker::v1::ROUTINE) {
    refsim::SyntheticReferrals gen(std::hash<std::string>()(request_id));
    auto r = gen.Make(kClinic, "", p, request_id);
    r.mutable_consent()->mutable_obtained_at()->set_seconds(kStart / 1000000 - 60);
    return r;
  }

  std::string SubmitUp(const std::string& request_id,
                       refbroker::v1::Priority p = refbroker::v1::ROUTINE) {
    auto out = workflow_->Submit(P(kClinic), NewReferral(request_id, p));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->referral.id() : "";
  }

  refbroker::v1::TransitionReferralRequest Request(const std::string& id,
                                                   refbroker::v1::ReferralAction action,
                                                   const std::string& request_id) {
    refbroker::v1::TransitionReferralRequest r;
    r.set_referral_id(id);
    r.set_client_request_id(request_id);
    r.mutable_doctor()->set_id("D1");
    r.mutable_doctor()->set_name("张医生");
    switch (action) {
      case refbroker::v1::ACCEPT:
        r.mutable_accept();
        break;
      case refbroker::v1::DECLINE:
        r.mutable_decline()->set_reason(refbroker::v1::NO_CAPACITY);
        r.mutable_decline()->set_text("no bed in cardiology");
        break;
      case refbroker::v1::ARRIVE:
        r.mutable_arrive();
        break;
      case refbroker::v1::COMPLETE:
        r.mutable_complete()->set_outcome_summary("PCI done; stable; follow up in clinic");
        break;
      case refbroker::v1::CANCEL:
        r.mutable_cancel()->set_reason("patient went elsewhere");
        break;
      default:
        break;
    }
    return r;
  }

  absl::Status Act(const std::string& who, const std::string& id,
                   refbroker::v1::ReferralAction action, const std::string& request_id = "") {
    static int n = 0;
    std::string rid = request_id.empty() ? "act-" + std::to_string(n++) : request_id;
    return workflow_->Transition(P(who), Request(id, action, rid)).status();
  }

  // Retained messages per queue.
  std::map<std::string, uint64_t> Messages() {
    std::map<std::string, uint64_t> out;
    auto stats = store_->ListQueueStats();
    EXPECT_TRUE(stats.ok());
    for (const auto& q : *stats) out[q.queue] = q.retained;
    return out;
  }

  // The newest message's payload on `queue` (leasing it for a throwaway group).
  refbroker::v1::Delivery LastOn(const std::string& queue) {
    static int g = 0;
    std::string group = "probe" + std::to_string(g++);
    EXPECT_TRUE(store_->EnsureGroup(queue, group, clock_.Now()).ok());
    storage::LeaseRequest probe;
    probe.queue = queue;
    probe.group = group;
    probe.max_messages = 1000;
    probe.now = clock_.Now();
    probe.lease_until = clock_.Now() + 1000000;
    auto leased = store_->Lease(probe);
    refbroker::v1::Delivery d;
    if (leased.ok() && !leased->messages.empty()) {
      uint64_t best = 0;
      for (const auto& m : leased->messages) {
        if (m.sequence >= best) {
          best = m.sequence;
          d.ParseFromString(m.payload);
        }
      }
    }
    return d;
  }

  inline static int counter_ = 0;
  std::string dir_;
  FakeClock clock_{kStart};
  std::unique_ptr<auth::Registry> registry_;
  std::unique_ptr<auth::AccessPolicy> policy_;
  std::unique_ptr<routing::ReferralRouter> router_;
  std::unique_ptr<storage::SqliteStore> store_;
  std::unique_ptr<domain::ReferralWorkflow> workflow_;
  std::vector<std::string> notified_;
};

}  // namespace refbroker::testing

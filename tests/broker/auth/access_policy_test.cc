#include "broker/auth/access_policy.h"

#include <gtest/gtest.h>

namespace refbroker::auth {
namespace {

class AccessPolicyTest : public testing::Test {
 protected:
  void SetUp() override {
    auto reg = Registry::LoadFile(std::string(REFBROKER_SOURCE_DIR) + "/deploy/registry.toml");
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    policy_ = std::make_unique<AccessPolicy>(*registry_);
  }
  const Principal& P(const std::string& id) { return *registry_->Find(id); }

  std::unique_ptr<Registry> registry_;
  std::unique_ptr<AccessPolicy> policy_;
};

constexpr char kHospital[] = "12411723417580001B";
constexpr char kClinic[] = "124117234175811018";
constexpr char kOtherClinic[] = "12411723417581102B";
constexpr char kOperator[] = "OP-PINGYU-XXK-01";

TEST_F(AccessPolicyTest, OwnerConsumesItsOwnQueueOnly) {
  QueueName own{kHospital, refbroker::v1::REFERRALS};
  EXPECT_TRUE(policy_->CanConsume(P(kHospital), own).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(policy_->CanConsume(P(kClinic), own)));
  EXPECT_TRUE(absl::IsPermissionDenied(policy_->CanConsume(P(kOperator), own)));
}

TEST_F(AccessPolicyTest, OperatorInspectsItsAllianceButClinicsOnlyThemselves) {
  EXPECT_TRUE(policy_->CanInspect(P(kOperator), kHospital, "owner").ok());
  EXPECT_TRUE(policy_->CanInspect(P(kClinic), kClinic, "owner").ok());
  EXPECT_TRUE(absl::IsPermissionDenied(policy_->CanInspect(P(kClinic), kOtherClinic, "owner")));
}

TEST_F(AccessPolicyTest, ReferralIsReadableBySenderReceiverAndOperator) {
  EXPECT_TRUE(policy_->CanReadReferral(P(kClinic), kClinic, kHospital).ok());
  EXPECT_TRUE(policy_->CanReadReferral(P(kHospital), kClinic, kHospital).ok());
  EXPECT_TRUE(policy_->CanReadReferral(P(kOperator), kClinic, kHospital).ok());
  EXPECT_TRUE(
      absl::IsPermissionDenied(policy_->CanReadReferral(P(kOtherClinic), kClinic, kHospital)));
}

}  // namespace
}  // namespace refbroker::auth

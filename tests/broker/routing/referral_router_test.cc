#include "broker/routing/referral_router.h"

#include <gtest/gtest.h>

namespace refbroker::routing {
namespace {

class ReferralRouterTest : public testing::Test {
 protected:
  void SetUp() override {
    auto reg =
        auth::Registry::LoadFile(std::string(REFBROKER_SOURCE_DIR) + "/deploy/registry.toml");
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    router_ = std::make_unique<ReferralRouter>(*registry_);
  }
  const auth::Principal& Clinic() { return *registry_->Find("124117234175811018"); }

  std::unique_ptr<auth::Registry> registry_;
  std::unique_ptr<ReferralRouter> router_;
};

TEST_F(ReferralRouterTest, DefaultsToTheLeadCountyHospital) {
  auto r = router_->RouteUp(Clinic(), "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->id, "12411723417580001B");
}

TEST_F(ReferralRouterTest, RoutesToANamedCountyHospital) {
  auto r = router_->RouteUp(Clinic(), "12411723417580004L");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->name, "平舆县中医院");
}

TEST_F(ReferralRouterTest, RefusesTownshipsUnknownsAndItself) {
  EXPECT_TRUE(absl::IsInvalidArgument(router_->RouteUp(Clinic(), "12411723417581102B").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(router_->RouteUp(Clinic(), "91350100M000100Y43").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(router_->RouteUp(Clinic(), Clinic().id).status()));
}

TEST_F(ReferralRouterTest, RefusesOutsideTheAllianceUnlessPartner) {
  auto reg = auth::Registry::LoadString(R"(
[[alliances]]
id = "a"
name = "A"
default_receiver = "12411723417580001B"
[[alliances]]
id = "b"
name = "B"
default_receiver = "12411723417580002E"
[[institutions]]
code = "12411723417580001B"
name = "HA"
cert = "ha"
role = "hospital"
level = "COUNTY"
alliance = "a"
[[institutions]]
code = "12411723417580002E"
name = "HB"
cert = "hb"
role = "hospital"
level = "CITY"
alliance = "b"
[[institutions]]
code = "124117234175811018"
name = "C"
cert = "c"
role = "clinic"
level = "TOWNSHIP"
alliance = "a"
[[institutions]]
code = "12411723417581102B"
name = "C2"
cert = "c2"
role = "clinic"
level = "TOWNSHIP"
alliance = "a"
partners = ["12411723417580002E"]
)");
  ASSERT_TRUE(reg.ok()) << reg.status();
  ReferralRouter router(**reg);
  auto* c = (*reg)->Find("124117234175811018");
  auto* c2 = (*reg)->Find("12411723417581102B");
  auto out = router.RouteUp(*c, "12411723417580002E");
  EXPECT_TRUE(absl::IsInvalidArgument(out.status()));
  EXPECT_NE(out.status().message().find("referral.to_institution"), absl::string_view::npos);
  EXPECT_TRUE(router.RouteUp(*c2, "12411723417580002E").ok());
}

}  // namespace
}  // namespace refbroker::routing

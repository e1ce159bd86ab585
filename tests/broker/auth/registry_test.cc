#include "broker/auth/registry.h"

#include <gtest/gtest.h>

namespace refbroker::auth {
namespace {

std::string SampleRegistryPath() {
  return std::string(REFBROKER_SOURCE_DIR) + "/deploy/registry.toml";
}

constexpr char kMinimal[] = R"(
[[alliances]]
id = "a"
name = "A"
default_receiver = "12411723417580001B"
[[institutions]]
code = "12411723417580001B"
name = "H"
cert = "h"
role = "hospital"
level = "COUNTY"
alliance = "a"
)";

TEST(Registry, LoadsTheSampleAlliance) {
  auto reg = Registry::LoadFile(SampleRegistryPath());
  ASSERT_TRUE(reg.ok()) << reg.status();
  int hospitals = 0, centers = 0, clinics = 0, operators = 0;
  for (const Principal& p : (*reg)->principals()) {
    hospitals += p.role == Role::kHospital && p.lead;
    centers += p.role == Role::kCenter;
    clinics += p.role == Role::kClinic;
    operators += p.role == Role::kOperator;
  }
  EXPECT_EQ(hospitals, 4);
  EXPECT_EQ(centers, 4);
  EXPECT_GE(clinics, 6);
  EXPECT_EQ(operators, 1);
  const Principal* people = (*reg)->Find("12411723417580001B");
  ASSERT_NE(people, nullptr);
  EXPECT_EQ(people->name, "平舆县人民医院");
  EXPECT_EQ((*reg)->FindAlliance("pingyu")->default_receiver, people->id);
}

TEST(Registry, RejectsAnInvalidCreditCodeNamingTheEntry) {
  std::string text = kMinimal;
  text.replace(text.find("code = \"12411723417580001B\""), 27, "code = \"12411723417580001C\"");
  auto reg = Registry::LoadString(text);
  ASSERT_FALSE(reg.ok());
  EXPECT_NE(reg.status().message().find("institutions[0].code"), absl::string_view::npos)
      << reg.status();
}

TEST(Registry, RejectsDuplicatePrincipals) {
  std::string text = std::string(kMinimal) + R"(
[[institutions]]
code = "12411723417580001B"
name = "H2"
cert = "h2"
role = "hospital"
level = "COUNTY"
alliance = "a"
)";
  auto reg = Registry::LoadString(text);
  ASSERT_FALSE(reg.ok());
  EXPECT_NE(reg.status().message().find("listed twice"), absl::string_view::npos);
}

TEST(Registry, RejectsUnknownAllianceAndBadRole) {
  std::string unknown = kMinimal;
  unknown.replace(unknown.find("alliance = \"a\""), 14, "alliance = \"b\"");
  EXPECT_FALSE(Registry::LoadString(unknown).ok());
  std::string role = kMinimal;
  role.replace(role.find("role = \"hospital\""), 17, "role = \"surgeon\"");
  EXPECT_FALSE(Registry::LoadString(role).ok());
}

TEST(Registry, ReportsTomlSyntaxErrors) {
  EXPECT_TRUE(absl::IsInvalidArgument(Registry::LoadString("[[institutions]\ncode=").status()));
}

}  // namespace
}  // namespace refbroker::auth

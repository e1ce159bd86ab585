#include "broker/domain/identifiers.h"

#include <gtest/gtest.h>

namespace refbroker::domain {
namespace {

TEST(ResidentId, AcceptsTheStandardsExampleWithCheckX) {
  // The worked example of GB 11643-1999.
  EXPECT_TRUE(ValidateResidentId("11010519491231002X", 2026).ok());
}

TEST(ResidentId, ComputesCheckCharacter) {
  EXPECT_EQ(ResidentIdCheckChar("11010519491231002"), 'X');
  EXPECT_EQ(ResidentIdCheckChar("44052418800101001"), '4');
}

TEST(ResidentId, RejectsWrongChecksum) {
  auto s = ValidateResidentId("110105194912310021", 2026);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_NE(s.message().find("checksum"), absl::string_view::npos);
}

TEST(ResidentId, RejectsImpossibleBirthDates) {
  std::string feb30 = "41172319900230001";
  feb30.push_back(ResidentIdCheckChar(feb30));
  EXPECT_FALSE(ValidateResidentId(feb30, 2026).ok());
  std::string future = "41172330000101001";
  future.push_back(ResidentIdCheckChar(future));
  EXPECT_FALSE(ValidateResidentId(future, 2026).ok());
}

TEST(ResidentId, RejectsWrongLengthAndLowercaseX) {
  EXPECT_FALSE(ValidateResidentId("1101051949123100", 2026).ok());
  EXPECT_FALSE(ValidateResidentId("11010519491231002x", 2026).ok());
  EXPECT_FALSE(ValidateResidentId("1101051949123A002X", 2026).ok());
}

TEST(ResidentId, ExtractsBirthDate) {
  EXPECT_EQ(ResidentIdBirthDate("11010519491231002X"), "1949-12-31");
}

TEST(CreditCode, AcceptsValidCodes) {
  EXPECT_TRUE(ValidateCreditCode("91350100M000100Y43").ok());
  EXPECT_TRUE(ValidateCreditCode("12411723417580001B").ok());
}

TEST(CreditCode, RejectsAlteredCharacterAndForbiddenLetters) {
  EXPECT_FALSE(ValidateCreditCode("12411723417580001C").ok());
  EXPECT_FALSE(ValidateCreditCode("12411723417580O01B").ok());  // O is not in the alphabet
  EXPECT_FALSE(ValidateCreditCode("12411723417580001").ok());
}

TEST(CreditCode, ComputesCheckCharacter) {
  EXPECT_EQ(CreditCodeCheckChar("91350100M000100Y4"), '3');
}

TEST(CalendarDate, ChecksLeapYears) {
  EXPECT_TRUE(IsCalendarDate("2024-02-29"));
  EXPECT_FALSE(IsCalendarDate("2023-02-29"));
  EXPECT_FALSE(IsCalendarDate("2023-2-28"));
}

}  // namespace
}  // namespace refbroker::domain

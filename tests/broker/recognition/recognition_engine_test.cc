// The mutual-recognition rules, one at a time: each failing rule alone gives exactly its one
// reason; several failing rules give several; the conclusion is never recognized.

#include "broker/recognition/recognition_engine.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace refbroker::recognition {
namespace {

namespace v1 = refbroker::v1;
constexpr Micros kDay = 86400LL * 1000000;

constexpr char kRegistry[] = R"(
[[alliances]]
id = "pingyu"
name = "平舆县医共体"
division = "411723"
default_receiver = "12411723417580001B"
[[alliances]]
id = "xiping"
name = "西平县医共体"
division = "411721"
default_receiver = "12411721417580001E"
[[alliances]]
id = "zhengzhou"
name = "郑州某医联体"
division = "410102"
default_receiver = "12410102417580001J"
[[institutions]]
code = "12411723417580001B"
name = "平舆县人民医院"
cert = "a"
role = "hospital"
level = "COUNTY"
alliance = "pingyu"
[[institutions]]
code = "12411723MB0A10014N"
name = "平舆县医学检验中心"
cert = "b"
role = "center"
level = "COUNTY"
alliance = "pingyu"
[[institutions]]
code = "12411721417580001E"
name = "西平县人民医院"
cert = "c"
role = "hospital"
level = "COUNTY"
alliance = "xiping"
[[institutions]]
code = "12410102417580001J"
name = "郑州某医院"
cert = "d"
role = "hospital"
level = "CITY"
alliance = "zhengzhou"
)";

constexpr char kCatalogue[] = R"(
version = 7
[marks]
MEDICAL_COMMUNITY = "平舆县医共体HR"
CITY = "驻马店市HR"
[[items]]
code = "LAB-GLU"
name = "空腹血糖"
kind = "LAB"
valid_days = 7
scope = "MEDICAL_COMMUNITY"
[[items]]
code = "LAB-HBA1C"
name = "糖化血红蛋白"
kind = "LAB"
valid_days = 30
scope = "CITY"
[[accreditation]]
institution = "12411723MB0A10014N"
item = "LAB-GLU"
eqa_passed = true
valid_from = "2026-01-01"
valid_until = "2026-06-30"
[[accreditation]]
institution = "12411723MB0A10014N"
item = "LAB-HBA1C"
eqa_passed = true
valid_from = "2026-01-01"
valid_until = "2027-12-31"
[[accreditation]]
institution = "12411723417580001B"
item = "LAB-GLU"
eqa_passed = false
valid_from = "2026-01-01"
valid_until = "2027-12-31"
)";

constexpr char kLab[] = "12411723MB0A10014N";
constexpr char kHospital[] = "12411723417580001B";
constexpr char kXiping[] = "12411721417580001E";
constexpr char kZhengzhou[] = "12410102417580001J";

class RecognitionRules : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reg = auth::Registry::LoadString(kRegistry);
    ASSERT_TRUE(reg.ok()) << reg.status();
    registry_ = std::move(*reg);
    auto cat = Catalogue::LoadString(kCatalogue);
    ASSERT_TRUE(cat.ok()) << cat.status();
    catalogue_ = std::move(*cat);
    performed_ = *ChinaMidnight("2026-03-02") + 10 * 3600LL * 1000000;  // 10:00
  }
  v1::RecognitionVerdict Check(ResultFacts r, const std::string& requester, Micros now) {
    return Recognize(r, *catalogue_, *registry_, requester, now);
  }
  ResultFacts Glucose() { return {"res-1", "LAB-GLU", kLab, performed_, false}; }
  static std::vector<v1::NonRecognitionReason> Reasons(const v1::RecognitionVerdict& v) {
    std::vector<v1::NonRecognitionReason> out;
    for (int r : v.reasons()) out.push_back(static_cast<v1::NonRecognitionReason>(r));
    return out;
  }

  std::unique_ptr<auth::Registry> registry_;
  std::unique_ptr<Catalogue> catalogue_;
  Micros performed_ = 0;
};

TEST_F(RecognitionRules, AnAccreditedInScopeFreshResultIsRecognizableWithItsMark) {
  auto v = Check(Glucose(), kHospital, performed_ + 2 * kDay);
  EXPECT_TRUE(v.recognizable());
  EXPECT_TRUE(v.reasons().empty());
  EXPECT_EQ(v.hr_mark(), "平舆县医共体HR");
  EXPECT_EQ(v.scope(), v1::MEDICAL_COMMUNITY);
  EXPECT_EQ(v.age_days(), 2);
  EXPECT_EQ(v.remaining_days(), 5);
  EXPECT_EQ(v.catalogue_version(), 7);
  EXPECT_FALSE(v.conclusion_recognized());
}

TEST_F(RecognitionRules, AnItemOutsideTheCatalogueGivesOnlyThatReason) {
  ResultFacts r = Glucose();
  r.item_code = "LAB-UNKNOWN";
  r.quality_flagged = true;  // not evaluated without a catalogue item
  auto v = Check(r, kHospital, performed_ + kDay);
  EXPECT_FALSE(v.recognizable());
  EXPECT_EQ(Reasons(v), std::vector<v1::NonRecognitionReason>{v1::NOT_IN_CATALOGUE});
}

TEST_F(RecognitionRules, ALabWithoutPassedEqaIsNotAccredited) {
  ResultFacts r = Glucose();
  r.performing_institution = kHospital;  // its glucose EQA failed
  EXPECT_EQ(Reasons(Check(r, kHospital, performed_ + kDay)),
            std::vector<v1::NonRecognitionReason>{v1::NOT_ACCREDITED});
  r.performing_institution = kXiping;  // no EQA record at all (and another alliance)
  r.item_code = "LAB-HBA1C";
  EXPECT_EQ(Reasons(Check(r, kHospital, performed_ + kDay)),
            std::vector<v1::NonRecognitionReason>{v1::NOT_ACCREDITED});
}

TEST_F(RecognitionRules, EqaThatLapsedBeforeThePerformedTimeIsNotAccredited) {
  ResultFacts r = Glucose();
  r.performed_at = *ChinaMidnight("2026-07-01") + 3600LL * 1000000;  // EQA ran to 06-30
  auto v = Check(r, kHospital, r.performed_at + kDay);
  EXPECT_EQ(Reasons(v), std::vector<v1::NonRecognitionReason>{v1::NOT_ACCREDITED});
  r.performed_at = *ChinaMidnight("2026-06-30") + 23 * 3600LL * 1000000;  // last covered day
  EXPECT_TRUE(Check(r, kHospital, r.performed_at + kDay).recognizable());
}

TEST_F(RecognitionRules, AnotherAllianceWithoutAWiderScopeIsOutOfScope) {
  auto v = Check(Glucose(), kXiping, performed_ + kDay);  // same city, but scope is the alliance
  EXPECT_EQ(Reasons(v), std::vector<v1::NonRecognitionReason>{v1::OUT_OF_SCOPE});
  ResultFacts a1c = Glucose();
  a1c.item_code = "LAB-HBA1C";  // CITY scope
  auto same_city = Check(a1c, kXiping, performed_ + kDay);
  EXPECT_TRUE(same_city.recognizable());
  EXPECT_EQ(same_city.hr_mark(), "驻马店市HR");
  EXPECT_EQ(Reasons(Check(a1c, kZhengzhou, performed_ + kDay)),
            std::vector<v1::NonRecognitionReason>{v1::OUT_OF_SCOPE});
}

TEST_F(RecognitionRules, TheLastValidDayCountsAndTheNextDayIsExpired) {
  auto last = Check(Glucose(), kHospital, performed_ + 7 * kDay + 13 * 3600LL * 1000000);
  EXPECT_TRUE(last.recognizable());
  EXPECT_EQ(last.age_days(), 7);
  EXPECT_EQ(last.remaining_days(), 0);
  auto late = Check(Glucose(), kHospital, performed_ + 8 * kDay);
  EXPECT_EQ(Reasons(late), std::vector<v1::NonRecognitionReason>{v1::EXPIRED});
}

TEST_F(RecognitionRules, AQualityFlagIsNotRecognizable) {
  ResultFacts r = Glucose();
  r.quality_flagged = true;
  EXPECT_EQ(Reasons(Check(r, kHospital, performed_ + kDay)),
            std::vector<v1::NonRecognitionReason>{v1::QUALITY_FLAG});
}

TEST_F(RecognitionRules, SeveralFailingRulesGiveEveryReason) {
  ResultFacts r = Glucose();
  r.performing_institution = kHospital;  // failed EQA
  r.quality_flagged = true;
  auto v = Check(r, kZhengzhou, performed_ + 30 * kDay);
  EXPECT_EQ(Reasons(v), (std::vector<v1::NonRecognitionReason>{v1::NOT_ACCREDITED, v1::OUT_OF_SCOPE,
                                                               v1::EXPIRED, v1::QUALITY_FLAG}));
  EXPECT_FALSE(v.recognizable());
  EXPECT_TRUE(v.hr_mark().empty());
}

TEST_F(RecognitionRules, TheConclusionIsNeverRecognized) {
  for (Micros now : {performed_, performed_ + kDay, performed_ + 100 * kDay}) {
    for (const char* requester : {kHospital, kXiping, kZhengzhou}) {
      EXPECT_FALSE(Check(Glucose(), requester, now).conclusion_recognized());
    }
  }
}

TEST(CatalogueLoading, RejectsBadEntriesNamingThem) {
  EXPECT_FALSE(Catalogue::LoadString("version = 0").ok());
  auto bad = Catalogue::LoadString(
      "version = 1\n[[items]]\ncode = \"X\"\nname = \"x\"\nkind = \"LAB\"\nvalid_days = 0\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("items[0].valid_days"), absl::string_view::npos);
  auto sample = Catalogue::LoadFile(std::string(REFBROKER_SOURCE_DIR) + "/deploy/recognition.toml");
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_NE((*sample)->FindItem("ECG-12"), nullptr);
}

TEST(CatalogueLoading, AReloadMustBeNewerAndKeepsTheOldVersionOtherwise) {
  auto v1cat = Catalogue::LoadString("version = 1");
  CatalogueHolder holder(std::shared_ptr<const Catalogue>(std::move(*v1cat)));
  std::string dir = ::testing::TempDir();
  std::string path = dir + "/cat.toml";
  { std::ofstream(path) << "version = 1\n"; }
  EXPECT_FALSE(holder.Reload(path).ok());
  EXPECT_EQ(holder.Get()->version(), 1);
  { std::ofstream(path) << "version = 2\n"; }
  EXPECT_TRUE(holder.Reload(path).ok());
  EXPECT_EQ(holder.Get()->version(), 2);
  std::filesystem::remove(path);  // not left in the shared temporary directory
}

}  // namespace
}  // namespace refbroker::recognition

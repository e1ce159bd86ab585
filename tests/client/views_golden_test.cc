// Golden-output tests of refctl's screens: `queues`, `referrals` and `report` (table, CSV and
// the HTML page) rendered from fixed answers must match tests/client/golden/ byte for byte, so
// that an operator's screen does not change by accident. After an intended change, regenerate
// with REFBROKER_UPDATE_GOLDEN=1 and review the diff.

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "client/ctl/views.h"
#include "tests/support/scripted_report.h"

namespace refctl {
namespace {

std::string GoldenPath(const std::string& name) {
  return std::string(REFBROKER_SOURCE_DIR) + "/tests/client/golden/" + name;
}

void ExpectGolden(const std::string& name, const std::string& actual) {
  const char* update = std::getenv("REFBROKER_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(GoldenPath(name)) << actual;
    GTEST_SKIP() << "updated " << GoldenPath(name);
  }
  std::ifstream in(GoldenPath(name));
  ASSERT_TRUE(in) << "missing golden file " << GoldenPath(name);
  std::stringstream expected;
  expected << in.rdbuf();
  EXPECT_EQ(actual, expected.str()) << "screen changed: " << name;
}

template <typename Message>
Message Parse(const char* text) {
  Message m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m));
  return m;
}

TEST(Golden, Queues) {
  auto queues = Parse<refbroker::v1::ListQueuesResponse>(R"pb(
    queues {
      queue { owner: "12411723417580001B" kind: REFERRALS }
      owner_name: "平舆县人民医院"
      direction: "up"
      depth: 12
      in_flight: 3
      dead_letters: 1
      oldest_age_seconds: 185
      retained: 240
      deadline_breaches: 2
      groups { consumer_group: "his" ready: 9 in_flight: 3 dead_letters: 1 consumers: 2 }
    }
    queues {
      queue { owner: "12411723417580004L" kind: REFERRALS }
      owner_name: "平舆县中医院"
      direction: "up"
      retained: 17
      groups { consumer_group: "his" consumers: 1 }
    }
    queues {
      queue { owner: "124117234175811018" kind: REFERRALS }
      owner_name: "西洋店镇卫生院"
      direction: "down"
      depth: 1
      oldest_age_seconds: 7260
      retained: 30
    }
    queues {
      queue { owner: "12411723MB0A10013K" kind: CONSULTS }
      owner_name: "平舆县心电诊断中心"
      depth: 4
      in_flight: 4
      oldest_age_seconds: 42
      deadline_breaches: 1
      retained: 60
      groups { consumer_group: "readers" ready: 0 in_flight: 4 consumers: 2 }
    }
  )pb");
  std::ostringstream out;
  PrintQueues(queues, out);
  ExpectGolden("queues.txt", out.str());
}

TEST(Golden, Referrals) {
  auto list = Parse<refbroker::v1::ListReferralsResponse>(R"pb(
    referrals {
      id: "ref-01JD0000000000000000000002"
      direction: DOWN
      priority: ROUTINE
      state: ACCEPTED
      from { institution: "12411723417580001B" }
      to_institution: "124117234175811018"
      submitted_at { seconds: 1793593200 }
    }
    referrals {
      id: "ref-01JD0000000000000000000001"
      direction: UP
      priority: EMERGENCY
      state: ESCALATED
      from { institution: "124117234175811018" }
      to_institution: "12411723417580001B"
      submitted_at { seconds: 1793581200 }
      decision_deadline { seconds: 1793581800 }
    }
  )pb");
  std::ostringstream out;
  PrintReferralList(list, /*utc=*/false, out);
  ExpectGolden("referrals.txt", out.str());
}

TEST(Golden, ReportTable) {
  std::ostringstream out;
  PrintReport(refbroker::testing::ScriptedReport(), /*utc=*/false, out);
  ExpectGolden("report.txt", out.str());
}

TEST(Golden, ReportCsv) {
  std::ostringstream out;
  PrintReportCsv(refbroker::testing::ScriptedReport(), out);
  ExpectGolden("report.csv", out.str());
}

TEST(Golden, ReportHtml) {
  std::ostringstream out;
  WriteReportHtml(refbroker::testing::ScriptedReport(), /*utc=*/false, out);
  ExpectGolden("report.html", out.str());
}

}  // namespace
}  // namespace refctl

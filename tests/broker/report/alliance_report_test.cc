// The alliance report from a scripted set of journeys with known times: every figure exact.

#include "broker/report/alliance_report.h"

#include <gtest/gtest.h>

#include "tests/support/scripted_report.h"

namespace refbroker::report {
namespace {

using testing::ScriptedReport;
using namespace testing::scripted;

namespace v1 = refbroker::v1;

const v1::InstitutionFigures& Figures(const v1::AllianceReport& r, const std::string& id) {
  for (const auto& f : r.institutions()) {
    if (f.institution() == id) return f;
  }
  ADD_FAILURE() << "no figures for " << id;
  return r.total();
}

TEST(AllianceReport, AllianceTotalsFromKnownJourneys) {
  v1::AllianceReport r = ScriptedReport();
  EXPECT_EQ(r.alliance(), "pingyu");
  EXPECT_EQ(r.alliance_name(), "平舆县紧密型县域医共体");
  const auto& t = r.total();
  EXPECT_EQ(t.level(), "ALLIANCE");
  EXPECT_EQ(t.up_sent(), 4u);
  EXPECT_EQ(t.down_sent(), 1u);
  EXPECT_DOUBLE_EQ(t.down_up_ratio(), 0.25);
  EXPECT_EQ(t.accepted(), 4u);
  EXPECT_EQ(t.declined(), 1u);
  // Acceptance minutes 5, 10, 30, 60: nearest rank p50 = 10, p90 = 60.
  EXPECT_EQ(t.acceptance().count(), 4u);
  EXPECT_DOUBLE_EQ(t.acceptance().p50_minutes(), 10);
  EXPECT_DOUBLE_EQ(t.acceptance().p90_minutes(), 60);
  ASSERT_EQ(t.decline_reasons_size(), 1);
  EXPECT_EQ(t.decline_reasons(0).reason(), "NO_CAPACITY");
  EXPECT_EQ(t.decline_reasons(0).count(), 1u);
  EXPECT_EQ(t.loops_closed(), 2u);
  EXPECT_DOUBLE_EQ(t.loops_closed_share(), 0.5);
  EXPECT_EQ(t.deadline_breaches(), 2u);
  EXPECT_EQ(t.consults_requested(), 3u);
  EXPECT_EQ(t.consults_reported(), 2u);
  EXPECT_EQ(t.results_attached(), 2u);
  EXPECT_EQ(t.results_recognizable(), 1u);
  EXPECT_EQ(t.repeats_without_reason(), 1u);
  ASSERT_EQ(t.retests_size(), 1);
  EXPECT_EQ(t.retests(0).reason(), "RETEST_CONDITION_CHANGED");
  EXPECT_EQ(t.retests(0).count(), 2u);
}

TEST(AllianceReport, PerInstitutionFigures) {
  v1::AllianceReport r = ScriptedReport();
  ASSERT_EQ(r.institutions_size(), 15);  // every institution of the alliance, even idle ones
  EXPECT_EQ(r.institutions(0).level(), "COUNTY");
  EXPECT_EQ(r.institutions(14).level(), "TOWNSHIP");
  const auto& people = Figures(r, kPeople);
  EXPECT_EQ(people.up_received(), 3u);
  EXPECT_EQ(people.down_sent(), 1u);
  EXPECT_NEAR(people.down_up_ratio(), 1.0 / 3.0, 1e-12);
  EXPECT_EQ(people.accepted(), 3u);
  EXPECT_DOUBLE_EQ(people.acceptance().p50_minutes(), 30);  // of 10, 30, 60
  EXPECT_DOUBLE_EQ(people.acceptance().p90_minutes(), 60);
  EXPECT_EQ(people.deadline_breaches(), 1u);
  EXPECT_EQ(people.consults_received(), 1u);
  EXPECT_EQ(people.consults_reported(), 0u);
  EXPECT_EQ(people.results_attached(), 2u);
  EXPECT_EQ(people.results_recognizable(), 1u);
  EXPECT_EQ(people.repeats_without_reason(), 1u);
  const auto& tcm = Figures(r, kTcm);
  EXPECT_EQ(tcm.up_received(), 1u);
  EXPECT_EQ(tcm.declined(), 1u);
  EXPECT_EQ(tcm.acceptance().count(), 0u);
  const auto& xiyangdian = Figures(r, kXiyangdian);
  EXPECT_EQ(xiyangdian.up_sent(), 2u);
  EXPECT_EQ(xiyangdian.down_received(), 1u);
  EXPECT_DOUBLE_EQ(xiyangdian.down_up_ratio(), 0.5);
  EXPECT_EQ(xiyangdian.loops_closed(), 2u);
  EXPECT_DOUBLE_EQ(xiyangdian.loops_closed_share(), 1.0);
  EXPECT_DOUBLE_EQ(xiyangdian.acceptance().p50_minutes(), 5);
  const auto& guhuai = Figures(r, kGuhuai);
  EXPECT_EQ(guhuai.up_sent(), 2u);
  EXPECT_EQ(guhuai.loops_closed(), 0u);
  EXPECT_EQ(guhuai.consults_requested(), 2u);
  const auto& ecg = Figures(r, kEcg);
  EXPECT_EQ(ecg.consults_received(), 2u);
  EXPECT_EQ(ecg.consults_reported(), 2u);
  EXPECT_EQ(ecg.deadline_breaches(), 1u);
}

TEST(AllianceReport, TurnaroundByServiceCountsTheFirstReportOnly) {
  v1::AllianceReport r = ScriptedReport();
  ASSERT_EQ(r.consult_turnaround_size(), 2);
  const auto& opinion = r.consult_turnaround(0);
  EXPECT_EQ(opinion.service(), "SPECIALTY_OPINION");
  EXPECT_EQ(opinion.requested(), 1u);
  EXPECT_EQ(opinion.reported(), 0u);
  const auto& ecg = r.consult_turnaround(1);
  EXPECT_EQ(ecg.service(), "ECG_READING");
  EXPECT_EQ(ecg.requested(), 2u);
  EXPECT_EQ(ecg.reported(), 2u);
  EXPECT_DOUBLE_EQ(ecg.turnaround().p50_minutes(), 12);
  EXPECT_DOUBLE_EQ(ecg.turnaround().p90_minutes(), 30);
  EXPECT_EQ(ecg.samples_minutes_size(), 2);
}

TEST(AllianceReport, PartnershipsRankedByActivityWithPaperOnlyOnesLast) {
  v1::AllianceReport r = ScriptedReport();
  // 5 active pairs; every other township x county hospital pair (28 - 3) has no traffic.
  ASSERT_EQ(r.partnerships_size(), 30);
  auto expect = [&r](int i, const char* township, const char* county, uint64_t up, uint64_t down,
                     uint64_t consults) {
    const auto& p = r.partnerships(i);
    EXPECT_EQ(p.rank(), static_cast<uint32_t>(i + 1));
    EXPECT_EQ(p.township(), township) << i;
    EXPECT_EQ(p.county(), county) << i;
    EXPECT_EQ(p.up(), up) << i;
    EXPECT_EQ(p.down(), down) << i;
    EXPECT_EQ(p.consults(), consults) << i;
    EXPECT_EQ(p.total(), up + down + consults) << i;
  };
  expect(0, kXiyangdian, kPeople, 2, 1, 0);
  expect(1, kGuhuai, kPeople, 1, 0, 1);
  expect(2, kXiyangdian, kEcg, 0, 0, 1);
  expect(3, kGuhuai, kTcm, 1, 0, 0);
  expect(4, kGuhuai, kEcg, 0, 0, 1);
  for (int i = 5; i < r.partnerships_size(); ++i) EXPECT_EQ(r.partnerships(i).total(), 0u);
}

TEST(AllianceReport, DailyFlowsPerTownshipOnTheChinaCalendarDay) {
  v1::AllianceReport r = ScriptedReport();
  ASSERT_EQ(r.flows_size(), 2);
  EXPECT_EQ(r.flows(0).day(), "2026-11-02");
  EXPECT_EQ(r.flows(0).township(), kXiyangdian);
  EXPECT_EQ(r.flows(0).up(), 2u);
  EXPECT_EQ(r.flows(0).down(), 1u);
  EXPECT_EQ(r.flows(1).township(), kGuhuai);
  EXPECT_EQ(r.flows(1).up(), 2u);
}

TEST(AllianceReport, PercentilesUseNearestRank) {
  auto p = PercentilesOf({4, 1, 3, 2, 5, 6, 7, 8, 9, 10});
  EXPECT_EQ(p.count(), 10u);
  EXPECT_DOUBLE_EQ(p.p50_minutes(), 5);
  EXPECT_DOUBLE_EQ(p.p90_minutes(), 9);
  EXPECT_EQ(PercentilesOf({}).count(), 0u);
  EXPECT_DOUBLE_EQ(PercentilesOf({7}).p90_minutes(), 7);
}

}  // namespace
}  // namespace refbroker::report

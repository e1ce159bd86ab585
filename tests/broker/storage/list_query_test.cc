#include "broker/storage/internal/list_query.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <vector>

#include "broker/storage/sqlite_store.h"
#include "tests/support/sqlite_plan.h"

namespace refbroker::storage::internal {
namespace {

using refbroker::testing::PlanOf;

class ListQueryPlan : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = std::filesystem::temp_directory_path() /
               ("refbroker-list-query-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    path_ = (dir / "refbroker.db").string();
    SqliteOptions o;
    o.path = path_;
    ASSERT_TRUE(SqliteStore::Open(o).ok());  // the schema, as the broker creates it
  }
  void TearDown() override {
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }

  // Every step that reads `table` searches one of its indexes for a key: none reads the
  // whole table or a whole index.
  void ExpectSearched(const std::string& sql, const std::string& table) {
    auto plan = PlanOf(path_, sql);
    ASSERT_FALSE(plan.empty());
    bool reads = false;
    for (const auto& step : plan) {
      if (step.find(" " + table) == std::string::npos) continue;
      reads = true;
      EXPECT_EQ(step.rfind("SEARCH " + table + " USING ", 0), 0u)
          << "step: " << step << "\nof: " << sql;
    }
    EXPECT_TRUE(reads) << sql;
  }

  // Every step that reads the table goes through `index`.
  void ExpectUses(const std::string& sql, const std::string& index) {
    auto plan = PlanOf(path_, sql);
    ASSERT_FALSE(plan.empty());
    for (const auto& step : plan) {
      if (step.rfind("SEARCH", 0) != 0 && step.rfind("SCAN", 0) != 0) continue;
      EXPECT_NE(step.find("INDEX " + index), std::string::npos)
          << "step: " << step << "\nof: " << sql;
    }
  }

  std::string path_;
};

TEST_F(ListQueryPlan, ReferralListingsSearchTheIndexOfTheirFilter) {
  ReferralQuery continuation;  // a DOWN referral looks for an earlier one of its journey
  continuation.journey_id = "jny-1";
  continuation.direction = 2;
  continuation.limit = 1;
  ExpectSearched(ReferralListSql(continuation, "id, submitted_at"), "referrals");

  ReferralQuery clinic;  // ListReferrals of a clinic, one page, then the next
  clinic.party = "124117234175811018";
  ExpectSearched(ReferralListSql(clinic, "id, submitted_at"), "referrals");
  clinic.after_submitted_at = 5;
  clinic.after_id = "ref-5";
  clinic.state = 3;  // ACCEPTED (the undecided states have their own index)
  ExpectSearched(ReferralListSql(clinic, "id, submitted_at"), "referrals");

  ReferralQuery journey_of_party;
  journey_of_party.party = "124117234175811018";
  journey_of_party.journey_id = "jny-1";
  ExpectSearched(ReferralListSql(journey_of_party, "id, submitted_at"), "referrals");

  ReferralQuery operator_view;  // an operator's alliance, one state
  operator_view.alliance = "pingyu";
  operator_view.state = 5;
  ExpectSearched(ReferralListSql(operator_view, "id, submitted_at"), "referrals");

  ReferralQuery one_institution;
  one_institution.alliance = "pingyu";
  one_institution.institution = "124117234175811018";
  ExpectSearched(ReferralListSql(one_institution, "id, submitted_at"), "referrals");
}

// The late views (refctl queues, refctl late, the status page) ask for the referrals of an
// alliance or an institution still waiting for a decision, and the open consults: they read
// those rows only, not every row of the alliance or the institution.
TEST_F(ListQueryPlan, TheLateViewsReadOnlyTheUndecidedReferralsAndTheOpenConsults) {
  // ESCALATED through an index of its escalated referrals alone (v10): every queue listing
  // counts them, and through the undecided ones it read every referral waiting for a decision.
  for (int state : {1, 2, 8}) {  // SUBMITTED, DELIVERED, ESCALATED
    const char* index = state == 8 ? "referrals_escalated" : "referrals_undecided";
    ReferralQuery undecided;
    undecided.state = state;
    undecided.limit = 500;
    undecided.alliance = "pingyu";
    ExpectUses(ReferralListSql(undecided, "id, submitted_at"), index);
    undecided.alliance.clear();
    undecided.party = "12411723417580001B";
    ExpectUses(ReferralListSql(undecided, "id, submitted_at"), index);
  }
  for (int state : {1, 2, 4}) {  // REQUESTED, ACCEPTED, SCHEDULED
    ConsultQuery open;
    open.state = state;
    open.limit = 10000;
    open.alliance = "pingyu";
    ExpectUses(ConsultListSql(open, "id, requested_at"), "consults_open");
    open.alliance.clear();
    open.party = "12411723417580001B";
    ExpectUses(ConsultListSql(open, "id, requested_at"), "consults_open");
  }
}

TEST_F(ListQueryPlan, ConsultListingsSearchTheIndexOfTheirFilter) {
  ConsultQuery requester;
  requester.party = "124117234175811018";
  requester.state = 5;  // REPORTED: not one of the open states
  ExpectSearched(ConsultListSql(requester, "id, requested_at"), "consults");
  ConsultQuery operator_view;
  operator_view.alliance = "pingyu";
  operator_view.after_requested_at = 5;
  operator_view.after_id = "con-5";
  ExpectSearched(ConsultListSql(operator_view, "id, requested_at"), "consults");
}

TEST_F(ListQueryPlan, APatientsAuditEntriesAreSearchedInThePatientAndSubjectIndexes) {
  AuditQuery patient;  // who saw this patient's records (an auditor's question)
  patient.patient_key = "pk-1";
  ExpectSearched(AuditListSql(patient, "seq"), "audit_log");
  patient.after_seq = 1000;  // the next page
  ExpectSearched(AuditListSql(patient, "seq"), "audit_log");
  AuditQuery subject;  // everything about one referral
  subject.subject = "ref-1";
  ExpectSearched(AuditListSql(subject, "seq"), "audit_log");
}

}  // namespace
}  // namespace refbroker::storage::internal

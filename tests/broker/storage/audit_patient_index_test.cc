// The audit trail's patient index by patient number (SQLite schema v9, internal/patient_no.h):
// a patient's entries are found through it, two patients whose numbers collide are told apart
// by their full keys, and a store from before it is numbered when it opens without changing a
// hash of the chain or the entries' immutability.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <vector>

#include "broker/storage/internal/list_query.h"
#include "broker/storage/internal/patient_no.h"
#include "broker/storage/sqlite_store.h"
#include "tests/support/audit_entries.h"
#include "tests/support/schema_versions.h"
#include "tests/support/sqlite_plan.h"
#include "tests/support/sqlite_store_file.h"

namespace refbroker::storage {
namespace {

// An entry of the principal the tests act as.
AuditRow Entry(const std::string& action, const std::string& subject,
               const std::string& patient_key) {
  return testing::AuditEntry("124117234175811018", action, subject, patient_key);
}

std::vector<std::string> Subjects(const std::vector<AuditRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.action + " " + r.subject);
  return out;
}

class AuditPatientIndex : public testing::SqliteStoreFile {
 protected:
  // Two patients' entries and one about nobody; pk-a's referral is delivered later under its
  // subject alone.
  void Fill(SqliteStore& store) {
    ASSERT_TRUE(
        store
            .AppendAudit({Entry("PublishResult", "res-a1", "pk-a"),
                          Entry("PublishResult", "res-b1", "pk-b"), Entry("ListQueues", "", ""),
                          Entry("SubmitReferral", "ref-a", "pk-a"), Entry("Deliver", "ref-a", "")})
            .ok());
  }

  // The entries of Fill, in a store closed afterwards (for a test to change its file).
  void FillAndClose() {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Fill(*store);
  }

  std::vector<std::string> OfPatient(SqliteStore& store, const std::string& patient_key) {
    AuditQuery q;
    q.patient_key = patient_key;
    q.limit = 100;
    auto rows = store.ListAudit(q);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() ? Subjects(*rows) : std::vector<std::string>{};
  }

  // Every entry's hash is its chain hash over the one before it.
  void ExpectChainHolds(SqliteStore& store) {
    AuditQuery all;
    all.limit = 100;
    auto rows = store.ListAudit(all);
    ASSERT_TRUE(rows.ok());
    ASSERT_FALSE(rows->empty());
    testing::ExpectHashChained(*rows);
  }
};

const std::vector<std::string> kPatientA = {"PublishResult res-a1", "SubmitReferral ref-a",
                                            "Deliver ref-a"};

TEST_F(AuditPatientIndex, APatientsEntriesAreFoundByTheirNumber) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  Fill(*store);
  EXPECT_EQ(OfPatient(*store, "pk-a"), kPatientA);
  EXPECT_EQ(OfPatient(*store, "pk-b"), std::vector<std::string>{"PublishResult res-b1"});
  EXPECT_TRUE(OfPatient(*store, "pk-c").empty());
  // The patient's own entries are searched in the index by number, not by key.
  AuditQuery q;
  q.patient_key = "pk-a";
  bool by_number = false;
  for (const auto& step : testing::PlanOf(options_.path, internal::AuditListSql(q, "seq"))) {
    if (step.find("INDEX audit_log_patient (patient_no=?)") != std::string::npos) by_number = true;
  }
  EXPECT_TRUE(by_number);
}

TEST_F(AuditPatientIndex, PatientsWhoseNumbersCollideAreToldApartByTheirKeys) {
  ASSERT_NO_FATAL_FAILURE(FillAndClose());
  ASSERT_NE(internal::PatientNo("pk-a"), internal::PatientNo("pk-b"));
  // What two patients with the same number would look like: b's entry under a's number.
  EXPECT_EQ(Exec("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET patient_no = " +
                 std::to_string(internal::PatientNo("pk-a")) +
                 " WHERE patient_key = 'pk-b'; CREATE TRIGGER audit_log_no_update BEFORE UPDATE "
                 "ON audit_log BEGIN SELECT RAISE(ABORT, 'audit entries are immutable'); END;"),
            "");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(OfPatient(*store, "pk-a"), kPatientA);
  EXPECT_EQ(OfPatient(*store, "pk-b"), std::vector<std::string>{});  // its number is a's now
}

TEST_F(AuditPatientIndex, AStoreFromBeforeTheNumbersIsNumberedWhenItOpensAndStaysImmutable) {
  ASSERT_NO_FATAL_FAILURE(FillAndClose());
  // The store as schema v8 left it: no numbers, the index by the full key.
  EXPECT_EQ(Exec(std::string(testing::kUndoSchemaV11) + testing::kUndoSchemaV10 +
                 "DROP INDEX audit_log_patient; ALTER TABLE audit_log DROP COLUMN patient_no;"
                 "CREATE INDEX audit_log_patient ON audit_log(patient_key) WHERE patient_key <> '';"
                 "PRAGMA user_version = 8;"),
            "");
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(OfPatient(*store, "pk-a"), kPatientA);
    EXPECT_EQ(OfPatient(*store, "pk-b"), std::vector<std::string>{"PublishResult res-b1"});
    ExpectChainHolds(*store);
    // Entries written after the migration are numbered as they are written.
    ASSERT_TRUE(store->AppendAudit({Entry("Recognize", "", "pk-b")}).ok());
    EXPECT_EQ(OfPatient(*store, "pk-b"),
              (std::vector<std::string>{"PublishResult res-b1", "Recognize "}));
    ExpectChainHolds(*store);
  }
  // The migration lifted the immutability trigger for its own statement only.
  EXPECT_NE(Exec("UPDATE audit_log SET outcome = 'DENIED' WHERE seq = 1").find("immutable"),
            std::string::npos);
  EXPECT_NE(Exec("UPDATE audit_log SET patient_no = 0 WHERE seq = 1").find("immutable"),
            std::string::npos);
}

}  // namespace
}  // namespace refbroker::storage

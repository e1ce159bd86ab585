// The results index by patient number (SQLite schema v7, internal/patient_no.h): a store from
// before it is numbered when it opens, and two patients whose numbers collide are told apart by
// their full keys. A publish's look at the earlier results reads that index alone (v8).

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <vector>

#include "broker/storage/internal/patient_no.h"
#include "broker/storage/sqlite_store.h"
#include "tests/support/schema_versions.h"
#include "tests/support/sqlite_plan.h"

namespace refbroker::storage {
namespace {

constexpr Micros kT0 = 1'700'000'000'000'000;

ResultRow Result(const std::string& id, const std::string& patient_key, Micros performed) {
  ResultRow r;
  r.id = id;
  r.publisher = "124117234175811018";
  r.client_request_id = "q-" + id;
  r.request_digest = "d-" + id;
  r.patient_key = patient_key;
  r.item_code = "LAB-GLU";
  r.kind = 1;
  r.performed_at = performed;
  r.received_at = kT0;
  r.body = "b-" + id;
  return r;
}

std::vector<std::string> Ids(const std::vector<ResultRow>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) out.push_back(r.id);
  return out;
}

class ResultsIndex : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("refbroker-results-index-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    options_.path = (dir_ / "refbroker.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SqliteStore> Open() {
    auto store = SqliteStore::Open(options_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Publishes `row` and returns the ids of the priors the store handed to the decision.
  std::vector<std::string> Publish(SqliteStore& store, const ResultRow& row) {
    std::vector<std::string> priors;
    auto decide = [&](const PriorScan& scan, const UnusedRetestLookup&,
                      ResultRow&) -> absl::StatusOr<PublishDecision> {
      absl::Status visited = scan(EveryPrior, [&](const ResultRow& p) {
        priors.push_back(p.id);
        return true;
      });
      if (!visited.ok()) return visited;
      return PublishDecision{};
    };
    EXPECT_TRUE(store.PublishResult(row, decide).ok());
    return priors;
  }

  // Runs `sql` on the store's file with a plain connection (the store closed).
  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(options_.path.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error != nullptr ? error : "") << "\n"
        << sql;
    sqlite3_free(error);
    sqlite3_close(db);
  }

  std::filesystem::path dir_;
  SqliteOptions options_;
};

TEST_F(ResultsIndex, PatientsWhoseNumbersCollideAreToldApartByTheirKeys) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Publish(*store, Result("res-a1", "pk-a", kT0 - 2));
    Publish(*store, Result("res-b1", "pk-b", kT0 - 1));
  }
  ASSERT_NE(internal::PatientNo("pk-a"), internal::PatientNo("pk-b"));
  // What two patients with the same number would look like: b's results under a's number.
  Exec("UPDATE results SET patient_no = " + std::to_string(internal::PatientNo("pk-a")) +
       " WHERE patient_key = 'pk-b'");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto all = store->ListResults("pk-a", {}, 10);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(Ids(*all), std::vector<std::string>{"res-a1"});
  auto item = store->ListResults("pk-a", {"LAB-GLU"}, 10);
  ASSERT_TRUE(item.ok());
  EXPECT_EQ(Ids(*item), std::vector<std::string>{"res-a1"});
  EXPECT_EQ(Publish(*store, Result("res-a2", "pk-a", kT0)), std::vector<std::string>{"res-a1"});
}

TEST_F(ResultsIndex, AStoreFromBeforeTheNumbersIsNumberedWhenItOpens) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    Publish(*store, Result("res-a1", "pk-a", kT0 - 3));
    Publish(*store, Result("res-b1", "pk-b", kT0 - 2));
    Publish(*store, Result("res-a2", "pk-a", kT0 - 1));
  }
  // The store as schema v6 left it: no numbers, the indexes by the full key.
  Exec(std::string(testing::kUndoSchemaV11) + testing::kUndoSchemaV10 +
       "DROP INDEX results_prior; ALTER TABLE results DROP COLUMN patient_no;"
       "CREATE INDEX results_patient_item ON results(patient_key, item_code, performed_at);"
       "DROP INDEX audit_log_patient; ALTER TABLE audit_log DROP COLUMN patient_no;"
       "CREATE INDEX audit_log_patient ON audit_log(patient_key) WHERE patient_key <> '';"
       "PRAGMA user_version = 6;");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto a = store->ListResults("pk-a", {}, 10);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(Ids(*a), (std::vector<std::string>{"res-a2", "res-a1"}));
  auto b = store->ListResults("pk-b", {"LAB-GLU"}, 10);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Ids(*b), std::vector<std::string>{"res-b1"});
  EXPECT_EQ(Publish(*store, Result("res-b2", "pk-b", kT0)), std::vector<std::string>{"res-b1"});
}

TEST_F(ResultsIndex, APublishFindsTheEarlierResultsInTheIndexWithoutReadingTheTable) {
  ASSERT_NE(Open(), nullptr);
  auto plan = testing::PlanOf(options_.path, SqliteStore::kPriorEntriesSql);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].rfind("SEARCH results USING COVERING INDEX results_prior ", 0), 0u) << plan[0];
}

}  // namespace
}  // namespace refbroker::storage

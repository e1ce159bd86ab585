#include "broker/storage/internal/integrity_check.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "broker/storage/sqlite_store.h"
#include "tests/support/files.h"
#include "tests/support/scratch_dir.h"

namespace refbroker::storage::internal {
namespace {

std::string FreshDir(const std::string& name) {
  auto dir = refbroker::testing::ScratchDir() / ("integrity-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void Sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
      << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

// A store with 3,000 queued messages (so `messages` is a tree of several levels), the WAL
// folded into the file. With `damage`, the root page of `messages` is then overwritten: the
// file still opens (the schema, the audit log and the migrations are elsewhere), but its
// structure is broken.
std::string StoreFile(const std::string& name, bool damage) {
  std::string path = FreshDir(name) + "/refbroker.db";
  {
    SqliteOptions o;
    o.path = path;
    auto store = SqliteStore::Open(o);
    EXPECT_TRUE(store.ok()) << store.status();
  }
  Sql(path,
      "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<3000) "
      "INSERT INTO messages(queue,priority,subject_id,payload,enqueued_at) "
      "SELECT 'q/referrals', 2, 'ref-' || i, randomblob(300), i FROM c;"
      "PRAGMA wal_checkpoint(TRUNCATE);");
  if (damage) refbroker::testing::OverwriteRootPage(path, "messages");
  return path;
}

// Waits up to 30 s for `condition` to turn false (the check runs on its own thread).
template <typename Condition>
void WaitWhile(Condition condition) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (condition() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

absl::Status CheckOf(const std::string& path) {
  auto db = Db::Open(path, /*read_only=*/true);
  EXPECT_TRUE(db.ok());
  std::promise<absl::Status> result;
  IntegrityCheck check(std::move(*db), [&](const absl::Status& s, double) { result.set_value(s); });
  auto future = result.get_future();
  EXPECT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  return future.get();
}

TEST(IntegrityCheck, AnIntactStorePasses) { EXPECT_TRUE(CheckOf(StoreFile("intact", false)).ok()); }

TEST(IntegrityCheck, ADamagedPageIsFoundAndNamedAsDataLoss) {
  absl::Status s = CheckOf(StoreFile("damaged", true));
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("integrity check failed"), std::string::npos) << s;
}

// The store serves as soon as it is open and checks its structure behind it; a damaged file
// found then is latched: the store reports itself unhealthy and refuses every write.
TEST(IntegrityCheck, AStoreOpenedOnADamagedFileRefusesWritesOnceTheCheckHasFoundIt) {
  SqliteOptions o;
  o.path = StoreFile("latched", true);
  auto store = SqliteStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  WaitWhile([&] { return (*store)->Health().ok(); });
  absl::Status health = (*store)->Health();
  EXPECT_TRUE(absl::IsDataLoss(health)) << health;
  absl::Status write = (*store)->EnsureGroup("q/referrals", "his", 1);
  EXPECT_TRUE(absl::IsDataLoss(write)) << write;
}

TEST(IntegrityCheck, AnIntactStoreStaysHealthyAfterItsCheck) {
  SqliteOptions o;
  o.path = StoreFile("healthy", false);
  auto store = SqliteStore::Open(o);
  ASSERT_TRUE(store.ok()) << store.status();
  WaitWhile([&] { return !(*store)->IntegrityCheckFinished(); });
  EXPECT_TRUE((*store)->IntegrityCheckFinished());
  EXPECT_TRUE((*store)->Health().ok());
  EXPECT_TRUE((*store)->EnsureGroup("q/referrals", "his", 1).ok());
  EXPECT_FALSE(std::filesystem::exists(DamageNotePath(o.path)));
}

// Found once, the damage is noted beside the store and the store is not opened again: a
// restarted broker would otherwise serve it, and acknowledge writes into it, until the check
// found the damage again, and the restore from a backup would lose those writes.
TEST(IntegrityCheck, AStoreFoundDamagedIsNotOpenedAgainUntilItsNoteIsMovedAside) {
  SqliteOptions o;
  o.path = StoreFile("noted", true);
  {
    auto store = SqliteStore::Open(o);
    ASSERT_TRUE(store.ok()) << store.status();
    WaitWhile([&] { return (*store)->Health().ok(); });
    ASSERT_TRUE(absl::IsDataLoss((*store)->Health()));
  }
  const std::string note = DamageNotePath(o.path);
  ASSERT_TRUE(std::filesystem::exists(note));
  const std::string text = refbroker::testing::ReadAll(note);
  EXPECT_NE(text.find("integrity check failed"), std::string::npos) << text;

  const auto written = std::filesystem::last_write_time(o.path);
  auto again = SqliteStore::Open(o);
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(absl::IsDataLoss(again.status())) << again.status();
  EXPECT_NE(again.status().message().find(note), std::string::npos) << again.status();
  EXPECT_NE(again.status().message().find("Restore the latest backup"), std::string::npos);
  EXPECT_EQ(std::filesystem::last_write_time(o.path), written) << "refused before any write";

  // The restore moves the note aside with the damaged store; the store in place then opens.
  std::filesystem::rename(note, note + ".broken");
  auto restored = SqliteStore::Open(o);
  EXPECT_TRUE(restored.ok()) << restored.status();
}

}  // namespace
}  // namespace refbroker::storage::internal

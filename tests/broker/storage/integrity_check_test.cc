#include "broker/storage/internal/integrity_check.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <string>
#include <thread>

#include "broker/storage/sqlite_store.h"
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

int64_t SqlInt(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
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
  if (damage) {
    int64_t root = SqlInt(path, "SELECT rootpage FROM sqlite_master WHERE name='messages'");
    int64_t page = SqlInt(path, "PRAGMA page_size");
    EXPECT_GT(root, 1);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((root - 1) * page);
    std::string junk(static_cast<size_t>(page), '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  return path;
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
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((*store)->Health().ok() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
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
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!(*store)->IntegrityCheckFinished() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
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
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((*store)->Health().ok() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(absl::IsDataLoss((*store)->Health()));
  }
  const std::string note = DamageNotePath(o.path);
  ASSERT_TRUE(std::filesystem::exists(note));
  std::ifstream in(note);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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

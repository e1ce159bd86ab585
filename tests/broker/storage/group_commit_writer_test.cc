#include "broker/storage/internal/group_commit_writer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>
#include <vector>

#include "tests/support/scratch_dir.h"

namespace refbroker::storage::internal {
namespace {

std::string TempDb(const char* name) {
  auto dir = refbroker::testing::ScratchDir() / "gcw";
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  std::filesystem::remove(path);
  return path.string();
}

std::unique_ptr<Db> OpenWithTable(const std::string& path) {
  auto db = Db::Open(path, false);
  EXPECT_TRUE(db.ok());
  EXPECT_TRUE((*db)
                  ->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                         "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY)")
                  .ok());
  return std::move(*db);
}

int64_t Count(const std::string& path) {
  auto db = Db::Open(path, true);
  auto st = (*db)->Prepare("SELECT COUNT(*) FROM t");
  (void)(*st)->Step();
  return (*st)->Int(0);
}

TEST(GroupCommitWriter, ConcurrentWritersShareCommits) {
  std::string path = TempDb("share.db");
  GroupCommitWriter writer(OpenWithTable(path), 256);
  constexpr int kThreads = 32, kPerThread = 20;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ASSERT_TRUE(writer
                        .Write([&](Db& db) {
                          return db.Exec("INSERT INTO t VALUES(" + std::to_string(t * 1000 + i) +
                                         ")");
                        })
                        .ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(writer.writes(), kThreads * kPerThread);
  // Every write was acknowledged, so all are visible to a fresh connection.
  EXPECT_EQ(Count(path), kThreads * kPerThread);
  std::printf("group commit: %llu writes in %llu commits\n",
              static_cast<unsigned long long>(writer.writes()),
              static_cast<unsigned long long>(writer.commits()));
  EXPECT_LT(writer.commits(), writer.writes());
}

TEST(GroupCommitWriter, AFailedRequestRollsBackAloneAndOthersCommit) {
  std::string path = TempDb("rollback.db");
  GroupCommitWriter writer(OpenWithTable(path), 256);
  ASSERT_TRUE(writer.Write([](Db& db) { return db.Exec("INSERT INTO t VALUES(1)"); }).ok());
  absl::Status failed = writer.Write([](Db& db) -> absl::Status {
    absl::Status s = db.Exec("INSERT INTO t VALUES(2)");
    if (!s.ok()) return s;
    return db.Exec("INSERT INTO t VALUES(1)");  // duplicate key: the whole request fails
  });
  EXPECT_TRUE(absl::IsAlreadyExists(failed)) << failed;
  ASSERT_TRUE(writer.Write([](Db& db) { return db.Exec("INSERT INTO t VALUES(3)"); }).ok());
  EXPECT_EQ(Count(path), 2);  // 1 and 3; the half of the failed request (2) is gone
  EXPECT_TRUE(writer.latched_error().ok());
}

}  // namespace
}  // namespace refbroker::storage::internal

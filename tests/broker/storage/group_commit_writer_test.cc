#include "broker/storage/internal/group_commit_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
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

// A late write (a lease) runs after the others of its batch, whenever it came: it sees what
// they enqueue and commits with them.
TEST(GroupCommitWriter, LateWritesRunAfterTheOthersOfTheirBatch) {
  std::string path = TempDb("late.db");
  GroupCommitWriter writer(OpenWithTable(path), 256);
  std::mutex mu;
  std::vector<std::string> order;
  auto note = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(what);
  };
  // The writer is held in a first batch until the next one's writes are all waiting.
  std::atomic<bool> holding{false}, release{false};
  std::thread holder([&] {
    ASSERT_TRUE(writer
                    .Write([&](Db& db) {
                      holding = true;
                      while (!release.load()) std::this_thread::yield();
                      return db.Exec("INSERT INTO t VALUES(0)");
                    })
                    .ok());
  });
  while (!holding.load()) std::this_thread::yield();  // the holder's batch is running
  std::vector<std::thread> writers;
  auto write = [&](const std::string& name, int key, bool late) {
    size_t waiting = writer.waiting();
    writers.emplace_back([&, name, key, late] {
      ASSERT_TRUE(writer
                      .Write(
                          [&, name, key](Db& db) {
                            note(name);
                            return db.Exec("INSERT INTO t VALUES(" + std::to_string(key) + ")");
                          },
                          late)
                      .ok());
    });
    // One at a time, so that the queue holds them in this order.
    while (writer.waiting() == waiting) std::this_thread::yield();
  };
  write("lease 1", 1, true);
  write("submit 2", 2, false);
  write("lease 3", 3, true);
  write("submit 4", 4, false);
  uint64_t commits_before = writer.commits();
  release = true;
  holder.join();
  for (auto& w : writers) w.join();
  EXPECT_EQ(order, (std::vector<std::string>{"submit 2", "submit 4", "lease 1", "lease 3"}));
  EXPECT_EQ(writer.commits() - commits_before, 2u);  // the holder's, then the four together
  EXPECT_EQ(Count(path), 5);
}

}  // namespace
}  // namespace refbroker::storage::internal

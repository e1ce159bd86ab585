#include "broker/storage/internal/checkpointer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "broker/storage/internal/group_commit_writer.h"
#include "tests/broker/storage/wal_table_db.h"

namespace refbroker::storage::internal {
namespace {

constexpr int kPage = 4096;

std::string FreshDb(const std::string& name) { return FreshWalDb("refbroker-ckpt", name); }
std::unique_ptr<Db> Open(const std::string& path) { return OpenWalTable(path); }

// Writes `rows` rows of about a page each from 8 threads through a group-commit writer while a
// background Checkpointer runs every 2 ms; returns the WAL file's size at the end, which is the
// furthest the WAL ever reached (SQLite reuses the file from its start after a restart).
uintmax_t WalHighWater(const std::string& path, bool writer_hook, uint64_t* writer_checkpoints) {
  auto progress = std::make_shared<CheckpointProgress>();
  progress->restart_frames = 128;  // 512 KiB
  progress->catch_up_frames = 64;
  progress->fallback_frames = 1 << 30;  // never: what the test watches is the restart
  std::unique_ptr<Db> writer_db = Open(path);
  if (writer_hook) {
    Checkpointer::InstallWriterHook(*writer_db, progress.get());
  } else {
    EXPECT_TRUE(writer_db->Exec("PRAGMA wal_autocheckpoint=0").ok());
  }
  GroupCommitWriter writer(std::move(writer_db), 64);
  uintmax_t wal_size = 0;
  {
    Checkpointer checkpointer(Open(path), std::chrono::milliseconds(2), progress);
    constexpr int kThreads = 8, kRowsPerThread = 400;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kRowsPerThread; ++i) {
          ASSERT_TRUE(writer
                          .Write([&](Db& db) {
                            return db.Exec("INSERT INTO t(v) VALUES(randomblob(" +
                                           std::to_string(kPage - 200) + "))");
                          })
                          .ok());
        }
      });
    }
    for (auto& th : threads) th.join();
    wal_size = std::filesystem::file_size(path + "-wal");
    EXPECT_GT(checkpointer.frames_copied(), 0u);
  }
  *writer_checkpoints = progress->writer_checkpoints.load();
  return wal_size;
}

// 3,200 rows of ~4 KiB (12.5 MiB of pages): without the writer's hook the background
// checkpoint copies the frames but the WAL rarely starts again, so it holds most of them; with
// it, the WAL goes back to its start every time it passes 128 frames and the background
// checkpoint has nearly caught up.
TEST(Checkpointer, TheWriterRestartsTheWalOnceTheBackgroundCheckpointHasCaughtUp) {
  uint64_t writer_checkpoints = 0;
  uintmax_t without = WalHighWater(FreshDb("without.db"), false, &writer_checkpoints);
  EXPECT_EQ(writer_checkpoints, 0u);
  uintmax_t with = WalHighWater(FreshDb("with.db"), true, &writer_checkpoints);
  std::printf(
      "WAL high water: %.1f MiB without the writer's hook, %.1f MiB with it (%llu writer "
      "checkpoints)\n",
      without / 1048576.0, with / 1048576.0, static_cast<unsigned long long>(writer_checkpoints));
  // Without the hook the WAL restarts only when the background checkpoint happens to catch up
  // in a pause between commits (more often on a slow machine: 7.9 MiB under ASan).
  EXPECT_GT(without, 3 * with);
  EXPECT_GT(writer_checkpoints, 0u);
  // 128 frames to restart, plus what commits add while the background checkpoint catches up.
  EXPECT_LT(with, uintmax_t{1024} * (kPage + 24));
}

}  // namespace
}  // namespace refbroker::storage::internal

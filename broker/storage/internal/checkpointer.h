#pragma once
// Checkpointer: moves WAL frames into the SQLite database file on its own thread and
// connection, so the group-commit writer never stops to checkpoint.
//
// In WAL mode a commit appends pages to the WAL; a checkpoint copies them back into the
// database file and fsyncs it. Run inside the writer (SQLite's auto-checkpoint), that copy and
// fsync stall every waiting publisher, and the stall grows with the store: the pages a commit
// dirties spread over more of the file. Here a PASSIVE checkpoint runs every `interval` on a
// separate connection, concurrently with the writer (WAL mode allows one checkpointer beside
// the writer).
//
// A PASSIVE checkpoint never ends the WAL while the writer keeps appending: by the time it has
// copied what was there, more has come, and the WAL only starts again from its beginning when a
// write transaction finds every frame copied. So the WAL grew to the writer's safety-net
// threshold (200 MB) and the writer then checkpointed all of it itself, stalling every
// publisher for the random writes into a large file (recognition_bench at 1M records: WAL
// 64 -> 190 MB, over and over). The writer's WAL hook (InstallWriterHook) closes the loop: once
// the WAL is past `restart_frames` and this thread has copied all but `catch_up_frames` of it,
// the writer copies the rest itself, a short stall, and its next transaction starts the WAL
// again from the beginning. Past `fallback_frames` it checkpoints regardless, as a safety net
// should this thread fall behind. Thread-safe; stops in the destructor.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "broker/storage/internal/sqlite_db.h"

namespace refbroker::storage::internal {

// What the background checkpointer last saw of the WAL, read by the writer's WAL hook.
struct CheckpointProgress {
  int restart_frames = 4096;       // 16 MiB of 4 KiB pages
  int catch_up_frames = 1024;      // at most this many left for the writer to copy
  int fallback_frames = 50000;     // the writer checkpoints regardless past this
  std::atomic<int> log_frames{0};  // frames in the WAL at the last background checkpoint
  std::atomic<int> backfilled{0};  // of which copied into the database file
  std::atomic<uint64_t> writer_checkpoints{0};
};

class Checkpointer {
 public:
  // `progress` must outlive the writer's connection (its WAL hook reads it).
  Checkpointer(std::unique_ptr<Db> db, std::chrono::milliseconds interval,
               std::shared_ptr<CheckpointProgress> progress);
  // Replaces SQLite's auto-checkpoint on the writer's connection with the policy above.
  static void InstallWriterHook(Db& writer, CheckpointProgress* progress);
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  uint64_t checkpoints() const;
  uint64_t frames_copied() const;

 private:
  void Run();

  std::unique_ptr<Db> db_;
  const std::chrono::milliseconds interval_;
  const std::shared_ptr<CheckpointProgress> progress_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;     // guarded by mu_
  uint64_t checkpoints_ = 0;  // guarded by mu_
  uint64_t frames_ = 0;       // guarded by mu_
  std::thread thread_;
};

}  // namespace refbroker::storage::internal

#pragma once
// Checkpointer: moves WAL frames into the SQLite database file on its own thread and
// connection, so the group-commit writer never stops to checkpoint.
//
// In WAL mode a commit appends pages to the WAL; a checkpoint copies them back into the
// database file and fsyncs it. Run inside the writer (SQLite's auto-checkpoint), that copy and
// fsync stall every waiting publisher, and the stall grows with the store: the pages a commit
// dirties spread over more of the file. Here a PASSIVE checkpoint runs every `interval` on a
// separate connection, concurrently with the writer (WAL mode allows one checkpointer beside
// the writer). The writer keeps SQLite's auto-checkpoint at `fallback_frames` as a safety net
// should this thread fall behind. Thread-safe; stops in the destructor.

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "broker/storage/internal/sqlite_db.h"

namespace refbroker::storage::internal {

class Checkpointer {
 public:
  Checkpointer(std::unique_ptr<Db> db, std::chrono::milliseconds interval);
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  uint64_t checkpoints() const;
  uint64_t frames_copied() const;

 private:
  void Run();

  std::unique_ptr<Db> db_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;     // guarded by mu_
  uint64_t checkpoints_ = 0;  // guarded by mu_
  uint64_t frames_ = 0;       // guarded by mu_
  std::thread thread_;
};

}  // namespace refbroker::storage::internal

#include "broker/storage/internal/checkpointer.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

namespace refbroker::storage::internal {

namespace {

// Runs on the writer's thread after each commit, outside its write lock (as SQLite's own
// auto-checkpoint does); `frames` is the WAL's length.
int WriterWalHook(void* arg, sqlite3* db, const char* name, int frames) {
  auto* p = static_cast<CheckpointProgress*>(arg);
  int seen = p->log_frames.load(std::memory_order_relaxed);
  int copied = p->backfilled.load(std::memory_order_relaxed);
  // `seen` above `frames` is a count from before the WAL started again: nothing is known yet.
  bool caught_up = seen <= frames && frames - copied <= p->catch_up_frames;
  if (frames >= p->fallback_frames || (frames >= p->restart_frames && caught_up)) {
    // PASSIVE: if the background checkpoint is running, this returns at once and the next
    // commit tries again.
    if (sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr) ==
        SQLITE_OK) {
      p->writer_checkpoints.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return SQLITE_OK;
}

}  // namespace

Checkpointer::Checkpointer(std::unique_ptr<Db> db, std::chrono::milliseconds interval,
                           std::shared_ptr<CheckpointProgress> progress)
    : db_(std::move(db)),
      interval_(interval),
      progress_(std::move(progress)),
      thread_([this] { Run(); }) {}

void Checkpointer::InstallWriterHook(Db& writer, CheckpointProgress* progress) {
  sqlite3_wal_hook(writer.raw(), &WriterWalHook, progress);
}

Checkpointer::~Checkpointer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t Checkpointer::checkpoints() const {
  std::lock_guard<std::mutex> lock(mu_);
  return checkpoints_;
}

uint64_t Checkpointer::frames_copied() const {
  std::lock_guard<std::mutex> lock(mu_);
  return frames_;
}

void Checkpointer::Run() {
  pthread_setname_np(pthread_self(), "rb-checkpoint");  // as top -H and perf show it
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, interval_, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    int log_frames = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(db_->raw(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                       &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      spdlog::warn("storage: background checkpoint failed: {}", sqlite3_errmsg(db_->raw()));
    }
    if (rc == SQLITE_OK) {
      progress_->log_frames.store(log_frames, std::memory_order_relaxed);
      progress_->backfilled.store(copied, std::memory_order_relaxed);
    }
    lock.lock();
    if (rc == SQLITE_OK && copied > 0) {
      checkpoints_++;
      frames_ += static_cast<uint64_t>(copied);
    }
  }
}

}  // namespace refbroker::storage::internal

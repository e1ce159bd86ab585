#include "broker/storage/internal/checkpointer.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

namespace refbroker::storage::internal {

Checkpointer::Checkpointer(std::unique_ptr<Db> db, std::chrono::milliseconds interval)
    : db_(std::move(db)), interval_(interval), thread_([this] { Run(); }) {}

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
    lock.lock();
    if (rc == SQLITE_OK && copied > 0) {
      checkpoints_++;
      frames_ += static_cast<uint64_t>(copied);
    }
  }
}

}  // namespace refbroker::storage::internal

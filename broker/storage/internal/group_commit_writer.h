#pragma once
// GroupCommitWriter: the single writer thread of the SQLite store.
//
// Callers hand it a write function and block until the transaction holding it is durable.
// The thread takes every waiting request, runs each inside its own SAVEPOINT of one
// transaction (a failing request rolls back alone), commits once (one WAL fsync with
// synchronous=FULL) and then wakes every caller with its own result. So many concurrent
// requests share one fsync, and each is answered only after its own effects are durable.
//
// Errors: a fatal SQLite error (I/O, corruption) rolls the batch back, fails every request in
// it and is latched: every later Write returns it at once. SQLITE_FULL fails the batch with
// RESOURCE_EXHAUSTED and is not latched. Thread-safe.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "broker/storage/internal/sqlite_db.h"

namespace refbroker::storage::internal {

class GroupCommitWriter {
 public:
  using WriteFn = std::function<absl::Status(Db&)>;

  GroupCommitWriter(std::unique_ptr<Db> db, size_t max_batch);
  ~GroupCommitWriter();  // finishes queued requests, then stops the thread
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // Runs `fn` in the next transaction; returns when it is durable (or failed). A `late` write
  // runs after the batch's other writes (each kind in the order it came): a lease placed there
  // takes what the submits committing with it enqueue, in the same commit, instead of leaving
  // it to a lease of its own in the next one.
  absl::Status Write(WriteFn fn, bool late = false);

  // The latched fatal error, or OK.
  absl::Status latched_error() const;
  // Latches `s` from outside (a damaged file found by the integrity check): every later Write
  // returns it.
  void Fail(const absl::Status& s) { Latch(s); }

  // Called on the writer thread after each successful commit with the number of requests it
  // carried and the seconds from BEGIN to the end of COMMIT (the fsync). Set before writes.
  using CommitObserver = std::function<void(size_t batch, double seconds)>;
  void SetCommitObserver(CommitObserver observer) {
    std::lock_guard<std::mutex> lock(mu_);
    observer_ = std::make_shared<CommitObserver>(std::move(observer));
  }

  // Called on the writer thread after each successful commit, before its callers are woken,
  // with the writer's connection (outside any transaction). Set before writes.
  using AfterCommit = std::function<void(Db&)>;
  void SetAfterCommit(AfterCommit after) {
    std::lock_guard<std::mutex> lock(mu_);
    after_commit_ = std::make_shared<AfterCommit>(std::move(after));
  }

  // Requests waiting for the next batch.
  size_t waiting() const {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }
  uint64_t commits() const { return commits_.load(); }
  uint64_t writes() const { return writes_.load(); }

 private:
  struct Request {
    WriteFn fn;
    bool late = false;
    absl::Status result;
    bool done = false;
  };

  void Run();
  void CommitBatch(std::deque<Request*>& batch);
  void Latch(const absl::Status& s);

  std::unique_ptr<Db> db_;
  const size_t max_batch_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<Request*> queue_;  // guarded by mu_
  bool stopping_ = false;       // guarded by mu_
  absl::Status latched_;        // guarded by mu_
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> writes_{0};
  std::shared_ptr<CommitObserver> observer_;   // guarded by mu_
  std::shared_ptr<AfterCommit> after_commit_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace refbroker::storage::internal

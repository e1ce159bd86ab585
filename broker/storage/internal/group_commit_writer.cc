#include "broker/storage/internal/group_commit_writer.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"

namespace refbroker::storage::internal {

GroupCommitWriter::GroupCommitWriter(std::unique_ptr<Db> db, size_t max_batch)
    : db_(std::move(db)), max_batch_(max_batch == 0 ? 1 : max_batch) {
  thread_ = std::thread([this] { Run(); });
}

GroupCommitWriter::~GroupCommitWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

absl::Status GroupCommitWriter::latched_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return latched_;
}

absl::Status GroupCommitWriter::Write(WriteFn fn, bool late) {
  Request req;
  req.fn = std::move(fn);
  req.late = late;
  std::unique_lock<std::mutex> lock(mu_);
  if (!latched_.ok()) return latched_;
  if (stopping_) return absl::UnavailableError("storage: shutting down");
  queue_.push_back(&req);
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return req.done; });
  return req.result;
}

void GroupCommitWriter::Latch(const absl::Status& s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (latched_.ok()) {
    latched_ = absl::Status(s.code(), absl::StrCat(s.message(), " [latched: restart required]"));
  }
}

void GroupCommitWriter::Run() {
  pthread_setname_np(pthread_self(), "rb-writer");  // as top -H and perf show it
  std::deque<Request*> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    CommitBatch(batch);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Request* r : batch) r->done = true;
    }
    done_cv_.notify_all();
    batch.clear();
  }
}

namespace {

// Runs one transaction-control statement from the connection's statement cache (parsed once,
// not on every request of every batch).
absl::Status Control(Db& db, const char* sql) {
  ASSIGN_OR_RETURN(auto st, db.Prepare(sql));
  return st->Run();
}

}  // namespace

void GroupCommitWriter::CommitBatch(std::deque<Request*>& batch) {
  absl::Status latched = latched_error();
  if (!latched.ok()) {
    for (Request* r : batch) r->result = latched;
    return;
  }
  auto begin = std::chrono::steady_clock::now();
  std::stable_partition(batch.begin(), batch.end(), [](const Request* r) { return !r->late; });
  absl::Status batch_status = Control(*db_, "BEGIN IMMEDIATE");
  for (Request* r : batch) {
    if (!batch_status.ok()) break;
    if (absl::Status s = Control(*db_, "SAVEPOINT request"); !s.ok()) {
      batch_status = s;
      break;
    }
    r->result = r->fn(*db_);
    if (db_->fatal_rc() != SQLITE_OK || absl::IsResourceExhausted(r->result)) {
      // The transaction cannot be trusted any more: fail the whole batch.
      batch_status = r->result.ok() ? absl::InternalError("storage: fatal error") : r->result;
      break;
    }
    absl::Status end =
        r->result.ok() ? Control(*db_, "RELEASE request") : Control(*db_, "ROLLBACK TO request");
    if (end.ok() && !r->result.ok()) end = Control(*db_, "RELEASE request");
    if (!end.ok()) batch_status = end;
  }
  if (batch_status.ok()) batch_status = Control(*db_, "COMMIT");
  if (!batch_status.ok()) {
    (void)db_->Exec("ROLLBACK");
    for (Request* r : batch) r->result = batch_status;
    if (db_->fatal_rc() != SQLITE_OK) Latch(batch_status);
    return;
  }
  commits_.fetch_add(1);
  writes_.fetch_add(batch.size());
  std::shared_ptr<CommitObserver> observer;
  std::shared_ptr<AfterCommit> after;
  {
    std::lock_guard<std::mutex> lock(mu_);
    observer = observer_;
    after = after_commit_;
  }
  if (after) (*after)(*db_);
  if (observer) {
    (*observer)(batch.size(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
  }
}

}  // namespace refbroker::storage::internal

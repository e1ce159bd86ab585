#pragma once
// PgWriter: group commit for the PostgreSQL store, the counterpart of GroupCommitWriter.
//
// Callers hand it a write function and block until the transaction holding it has committed
// (synchronous_commit=on: the server flushed its WAL). The writer thread takes every waiting
// request, runs each inside its own SAVEPOINT of one transaction (a failing request rolls back
// alone; a deadlock, serialization failure or unique-key race with another broker is retried a
// few times), appends the audit entries of the requests that succeeded to the one hash chain
// all brokers share, commits once and wakes every caller with its own result.
//
// The chain's head (audit_head) is locked only for the append at the end of the batch, so
// batches of several brokers run their requests concurrently and queue only for the append and
// the commit.
//
// The connection may be in pipeline mode (PgConn): then a request sends what it does not read
// back without waiting, and a sync at its end waits for all of it, so a failure among those
// statements fails that request alone, as any other failure does. Its savepoint is released only
// after that sync succeeds (the release is queued and read with what follows): a queued update
// that changed no row (PgConn::QueueOneRow) is no error to the server, which runs what comes
// after it, so a release sent with it would leave nothing to roll back to.
//
// Errors are not latched: a lost connection fails the batch with UNAVAILABLE (nothing of it is
// acknowledged) and the next batch reconnects. Thread-safe.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "broker/storage/internal/pg_conn.h"
#include "broker/storage/store.h"

namespace refbroker::storage::internal {

// What a write function gets: the connection, inside the request's savepoint, and the audit
// entries to append to the chain if the request succeeds.
struct PgTx {
  PgConn& conn;
  std::vector<AuditRow>& audit;
};

class PgWriter {
 public:
  using WriteFn = std::function<absl::Status(PgTx&)>;
  using CommitObserver = std::function<void(size_t batch, double seconds)>;

  PgWriter(std::unique_ptr<PgConn> conn, size_t max_batch);
  ~PgWriter();  // finishes queued requests, then stops the thread
  PgWriter(const PgWriter&) = delete;
  PgWriter& operator=(const PgWriter&) = delete;

  // Runs `fn` in the next transaction; returns when it has committed (or failed).
  absl::Status Write(WriteFn fn);

  // The error of the last batch when the database could not be reached; OK once one commits.
  absl::Status connection_error() const;

  void SetCommitObserver(CommitObserver observer);
  uint64_t commits() const { return commits_.load(); }
  uint64_t writes() const { return writes_.load(); }
  // The connection's round trips, as of the last batch.
  uint64_t round_trips() const { return round_trips_.load(); }

 private:
  struct Request {
    WriteFn fn;
    absl::Status result;
    bool done = false;
  };

  void Run();
  void CommitBatch(std::deque<Request*>& batch);
  absl::Status RunRequest(Request& r, std::vector<AuditRow>& audit);

  std::unique_ptr<PgConn> conn_;
  const size_t max_batch_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<Request*> queue_;                // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_
  absl::Status connection_error_;             // guarded by mu_
  std::shared_ptr<CommitObserver> observer_;  // guarded by mu_
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> round_trips_{0};
  std::thread thread_;
};

// Appends `rows` to the audit chain after its head (locked FOR UPDATE until the transaction
// ends), assigning seq and hashes.
absl::Status PgAppendAudit(PgConn& conn, std::vector<AuditRow>& rows);

}  // namespace refbroker::storage::internal

#include "broker/storage/internal/pg_writer.h"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/storage/audit_chain.h"

namespace refbroker::storage::internal {

PgWriter::PgWriter(std::unique_ptr<PgConn> conn, size_t max_batch)
    : conn_(std::move(conn)), max_batch_(max_batch == 0 ? 1 : max_batch) {
  thread_ = std::thread([this] { Run(); });
}

PgWriter::~PgWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

absl::Status PgWriter::connection_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connection_error_;
}

void PgWriter::SetCommitObserver(CommitObserver observer) {
  std::lock_guard<std::mutex> lock(mu_);
  observer_ = std::make_shared<CommitObserver>(std::move(observer));
}

absl::Status PgWriter::Write(WriteFn fn) {
  Request req;
  req.fn = std::move(fn);
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) return absl::UnavailableError("storage: shutting down");
  queue_.push_back(&req);
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return req.done; });
  return req.result;
}

void PgWriter::Run() {
  pthread_setname_np(pthread_self(), "rb-pg-writer");
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
    round_trips_.store(conn_->round_trips());
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (Request* r : batch) r->done = true;
    }
    done_cv_.notify_all();
    batch.clear();
  }
}

absl::Status PgAppendAudit(PgConn& conn, std::vector<AuditRow>& rows) {
  if (rows.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto head, conn.Run("SELECT seq, hash FROM audit_head WHERE id=1 FOR UPDATE"));
  if (head.rows() != 1) return absl::InternalError("storage (postgres): audit_head row missing");
  uint64_t seq = static_cast<uint64_t>(head.Int(0, 0));
  std::string prev = head.Bytes(0, 1);
  for (AuditRow& row : rows) {
    row.seq = ++seq;
    row.prev_hash = prev;
    row.hash = AuditChainHash(prev, row);
    prev = row.hash;
  }
  // Multi-row inserts of up to 16 entries per statement (prepared once per size).
  constexpr size_t kPerStatement = 16;
  static const std::array<std::string, kPerStatement + 1> kInserts = [] {
    std::array<std::string, kPerStatement + 1> out;
    for (size_t n = 1; n <= kPerStatement; ++n) {
      std::string sql =
          "INSERT INTO audit_log(seq, at, actor, alliance, action, subject, patient_key, peer, "
          "outcome, prev_hash, hash) VALUES ";
      for (size_t i = 0; i < n; ++i) {
        int b = static_cast<int>(i * 11);
        absl::StrAppend(&sql, i ? "," : "", "($", b + 1, "::bigint,$", b + 2, "::bigint");
        for (int k = 3; k <= 11; ++k) absl::StrAppend(&sql, ",$", b + k);
        absl::StrAppend(&sql, ")");
      }
      out[n] = std::move(sql);
    }
    return out;
  }();
  for (size_t at = 0; at < rows.size(); at += kPerStatement) {
    size_t n = std::min(kPerStatement, rows.size() - at);
    PgParams p;
    for (size_t i = at; i < at + n; ++i) {
      const AuditRow& r = rows[i];
      p.Add(static_cast<int64_t>(r.seq)).Add(r.at).Add(r.actor).Add(r.alliance).Add(r.action);
      p.Add(r.subject).Add(r.patient_key).Add(r.peer).Add(r.outcome).Add(r.prev_hash).Add(r.hash);
    }
    RETURN_IF_ERROR(conn.Queue(kInserts[n].c_str(), p));
  }
  // Checked with the COMMIT that follows (pipeline mode).
  return conn.Queue("UPDATE audit_head SET seq=$1::bigint, hash=$2 WHERE id=1",
                    PgParams().Add(static_cast<int64_t>(seq)).Add(prev));
}

absl::Status PgWriter::RunRequest(Request& r, std::vector<AuditRow>& audit) {
  constexpr int kAttempts = 4;
  absl::Status s;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    RETURN_IF_ERROR(conn_->QueueExec("SAVEPOINT request"));
    std::vector<AuditRow> own;
    PgTx tx{*conn_, own};
    s = r.fn(tx);
    // What the request queued without waiting is read here (pipeline mode): a failure among it
    // fails the request; on the way out of a failed one it is read before the rollback, so that
    // it cannot fail the rollback and with it the batch.
    // The release follows the sync (see the header): queued, it is read with the next request's
    // first read or the commit, and only the loss of the connection can fail it.
    if (s.ok()) {
      s = conn_->Sync();
      if (s.ok()) s = conn_->QueueExec("RELEASE request");
    } else {
      (void)conn_->Sync();
    }
    if (conn_->broken()) return s.ok() ? absl::UnavailableError("storage: connection lost") : s;
    if (s.ok()) {
      for (AuditRow& row : own) audit.push_back(std::move(row));
      r.result = s;
      return absl::OkStatus();
    }
    // A race with another broker's transaction (deadlock, serialization, the same unique key
    // inserted meanwhile) is retried: the retry sees the other's committed row.
    const std::string state = conn_->last_sqlstate();
    RETURN_IF_ERROR(conn_->QueueExec("ROLLBACK TO request"));
    RETURN_IF_ERROR(conn_->Exec("RELEASE request"));
    bool race = state == "40001" || state == "40P01" || state == "23505";
    if (!race) break;
  }
  r.result = s;
  return absl::OkStatus();
}

void PgWriter::CommitBatch(std::deque<Request*>& batch) {
  auto begin = std::chrono::steady_clock::now();
  absl::Status batch_status;
  if (conn_->broken()) batch_status = conn_->Reconnect();
  if (batch_status.ok()) batch_status = conn_->QueueExec("BEGIN");
  std::vector<AuditRow> audit;
  for (Request* r : batch) {
    if (!batch_status.ok()) break;
    batch_status = RunRequest(*r, audit);
  }
  if (batch_status.ok()) batch_status = PgAppendAudit(*conn_, audit);
  if (batch_status.ok()) batch_status = conn_->Exec("COMMIT");
  if (!batch_status.ok()) {
    if (!conn_->broken()) (void)conn_->Exec("ROLLBACK");
    if (conn_->broken() && !absl::IsUnavailable(batch_status)) {
      batch_status = absl::UnavailableError(
          absl::StrCat("storage (postgres): connection lost: ", batch_status.message()));
    }
    for (Request* r : batch) r->result = batch_status;
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::IsUnavailable(batch_status)) connection_error_ = batch_status;
    return;
  }
  commits_.fetch_add(1);
  writes_.fetch_add(batch.size());
  std::shared_ptr<CommitObserver> observer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connection_error_ = absl::OkStatus();
    observer = observer_;
  }
  if (observer) {
    (*observer)(batch.size(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
  }
}

}  // namespace refbroker::storage::internal

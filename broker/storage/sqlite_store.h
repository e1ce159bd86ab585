#pragma once
// SqliteStore: the embedded, default Store. One database file in WAL mode with
// synchronous=FULL; writes go through a GroupCommitWriter (one writer thread, one fsync per
// batch); reads use a small pool of read-only connections that run concurrently with the
// writer. The on-disk schema is described in broker/storage/README.md.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "broker/storage/internal/ack_marker.h"
#include "broker/storage/internal/checkpointer.h"
#include "broker/storage/internal/group_commit_writer.h"
#include "broker/storage/internal/integrity_check.h"
#include "broker/storage/internal/sqlite_db.h"
#include "broker/storage/store.h"

namespace refbroker::storage {

struct SqliteOptions {
  std::string path;        // database file; its directory must exist
  size_t max_batch = 256;  // most requests in one group commit
  size_t readers = 4;      // read-only connections
  // WAL checkpoints run on their own thread this often (0: inside the writer, SQLite's
  // default); the writer copies only the last few frames once that thread has caught up (so the
  // WAL starts again, see Checkpointer), and all of them past `fallback_checkpoint_pages`.
  int checkpoint_interval_ms = 20;
  int fallback_checkpoint_pages = 50000;
  int64_t wal_size_limit_bytes = 64LL << 20;  // the WAL file is truncated to this after a reset
  // Statements slower than this are logged (Db::LogSlowStatements), on the writer, the
  // readers and the checkpointer; not the integrity check, which reads the whole file. 0: off.
  int slow_statement_ms = 250;
};

class SqliteStore final : public Store {
 public:
  // Opens or creates the database, applies migrations, and checks integrity of the schema.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const SqliteOptions& options);
  ~SqliteStore() override;

  // What a publish compares the new result with (PublishResult's PriorScan): entries of the
  // results_prior index alone (schema v8), which hold what the PriorFilter is asked; the rows
  // are read by rowid only for the entries it lets through, and a patient whose number collides
  // with this one's is told apart then. Public for the test that holds it to that index.
  static constexpr char kPriorEntriesSql[] =
      "SELECT rowid, publisher, performed_at FROM results WHERE patient_no=?1 AND item_code=?2 "
      "AND performed_at<?3 ORDER BY performed_at DESC LIMIT 20";

  absl::StatusOr<SubmitResult> SubmitReferral(const ReferralRecord& referral,
                                              const ReferralEventRecord& event,
                                              const std::vector<NewMessage>& messages) override;
  absl::StatusOr<ReferralRecord> GetReferral(const std::string& id) override;
  absl::StatusOr<ChangeResult> ChangeReferral(const ReferralChange& change) override;
  absl::StatusOr<std::optional<ReferralEventRecord>> FindReferralEvent(
      const std::string& actor, const std::string& client_request_id) override;
  absl::StatusOr<std::vector<ReferralEventRecord>> ListReferralEvents(
      const std::string& referral_id) override;
  absl::StatusOr<std::vector<ReferralRecord>> ListReferrals(const ReferralQuery& query) override;
  absl::StatusOr<std::vector<ReferralRecord>> ListDueReferrals(Micros now, size_t limit) override;
  absl::StatusOr<std::optional<Micros>> NextDecisionDue() override;
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListAckedButUndelivered(
      size_t limit) override;
  absl::Status FinishDeliverySweep() override;
  absl::Status EnsureGroup(const std::string& queue, const std::string& group, Micros now) override;
  absl::StatusOr<uint64_t> Replay(const std::string& queue, const std::string& group,
                                  uint64_t from_sequence, Micros now) override;
  absl::StatusOr<LeaseResult> Lease(const LeaseRequest& request) override;
  absl::StatusOr<std::vector<AckResult>> AckBatch(const std::string& queue,
                                                  const std::string& group,
                                                  const std::vector<uint64_t>& sequences,
                                                  Micros now,
                                                  const AckFollowUp& follow_up) override;
  absl::StatusOr<AckLeaseResult> AckThenLease(const std::vector<uint64_t>& sequences,
                                              const AckFollowUp& follow_up,
                                              const LeaseRequest& lease) override;
  absl::Status Nack(const std::string& queue, const std::string& group, uint64_t sequence,
                    const std::string& reason, uint32_t max_attempts, Micros retry_at,
                    Micros now) override;
  absl::Status Release(const std::string& queue, const std::string& group,
                       const std::vector<uint64_t>& sequences, Micros now) override;
  absl::StatusOr<std::vector<QueueStats>> ListQueueStats() override;
  absl::StatusOr<DeadlineBreaches> CountDeadlineBreaches(
      const DeadlineBreachFilter& filter) override;
  absl::StatusOr<std::vector<DeadLetterRecord>> ListDeadLetters(
      const DeadLetterFilter& filter) override;
  absl::StatusOr<uint64_t> RequeueDeadLetters(const std::string& queue, const std::string& group,
                                              uint64_t sequence, Micros now) override;
  absl::StatusOr<uint64_t> Prune(Micros cutoff) override;
  absl::StatusOr<PublishOutcome> PublishResult(const ResultRow& row,
                                               const PublishDecider& decide) override;
  absl::StatusOr<ResultRow> GetResult(const std::string& id) override;
  absl::StatusOr<std::vector<ResultRow>> ListResults(const std::string& patient_key,
                                                     const std::vector<std::string>& item_codes,
                                                     size_t limit) override;
  absl::StatusOr<RetestOutcome> RecordRetest(const RetestRow& row) override;
  absl::StatusOr<std::optional<RetestRow>> FindUnusedRetest(const std::string& institution,
                                                            const std::string& patient_key,
                                                            const std::string& item_code) override;
  absl::StatusOr<std::vector<RetestCountRow>> CountRetests(Micros from, Micros to) override;
  absl::StatusOr<ConsultSubmitResult> SubmitConsult(
      const ConsultRecord& consult, const ConsultEventRecord& event,
      const std::vector<NewMessage>& messages) override;
  absl::StatusOr<ConsultRecord> GetConsult(const std::string& id) override;
  absl::StatusOr<ConsultChangeResult> ChangeConsult(const ConsultChange& change) override;
  absl::StatusOr<std::optional<ConsultEventRecord>> FindConsultEvent(
      const std::string& actor, const std::string& client_request_id) override;
  absl::StatusOr<std::vector<ConsultEventRecord>> ListConsultEvents(
      const std::string& consult_id) override;
  absl::StatusOr<std::vector<ConsultReportRow>> ListConsultReports(
      const std::string& consult_id) override;
  absl::StatusOr<ThreadMessageOutcome> AppendConsultMessage(
      const ConsultMessageRow& row, const ThreadMessageAnnouncer& announce) override;
  absl::StatusOr<std::vector<ConsultMessageRow>> ListConsultMessages(const std::string& consult_id,
                                                                     uint64_t after_seq) override;
  absl::StatusOr<std::vector<ConsultRecord>> ListConsults(const ConsultQuery& query) override;
  absl::StatusOr<std::vector<ConsultRecord>> ListDueConsults(Micros now, size_t limit) override;
  absl::StatusOr<std::optional<Micros>> NextConsultDue() override;
  absl::Status AppendAudit(const std::vector<AuditRow>& rows) override;
  absl::StatusOr<std::vector<AuditRow>> ListAudit(const AuditQuery& query) override;
  absl::StatusOr<AuditAnchor> GetAuditAnchor() override;
  absl::StatusOr<uint64_t> ArchiveAudit(Micros cutoff, Micros now, size_t limit,
                                        const AuditArchiveSink& sink) override;
  absl::StatusOr<uint64_t> PruneResults(Micros cutoff) override;
  absl::Status Health() override;

  void SetCommitObserver(CommitObserver observer) override {
    writer_->SetCommitObserver(std::move(observer));
  }
  uint64_t commits() const override { return writer_->commits(); }
  uint64_t writes() const override { return writer_->writes(); }
  // Whether the structural check Open started behind the store has ended (benchmarks wait for
  // it: it reads the whole file and holds the WAL from being checkpointed while it runs).
  bool IntegrityCheckFinished() const { return integrity_ == nullptr || integrity_->finished(); }

 private:
  SqliteStore() = default;
  // Runs `fn` on a pooled read-only connection, in one read transaction.
  absl::Status Read(const std::function<absl::Status(internal::Db&)>& fn);
  absl::Status ReadTxn(const std::function<absl::Status(internal::Db&)>& fn) { return Read(fn); }
  // Runs `fn` in the next group commit, with the calling thread's pending audit entries
  // (AuditScope) in the same transaction; returns when it is durable.
  // `late`: after the batch's other writes (GroupCommitWriter::Write).
  absl::Status WriteTxn(std::function<absl::Status(internal::Db&)> fn, bool late = false);
  // The bodies of Lease and AckBatch, inside a transaction WriteTxn runs (AckThenLease runs
  // both in one).
  absl::Status LeaseIn(internal::Db& tx, const LeaseRequest& req, LeaseResult& result);
  absl::Status AckIn(internal::Db& tx, const std::string& queue, const std::string& group,
                     const std::vector<uint64_t>& sequences, Micros now,
                     const AckFollowUp& follow_up, std::vector<AckResult>& results);

  std::unique_ptr<internal::AckMarker> marker_;  // used by the writer thread: outlives it
  // Read by the writer connection's WAL hook: outlives it.
  std::shared_ptr<internal::CheckpointProgress> checkpoint_progress_;
  std::unique_ptr<internal::GroupCommitWriter> writer_;
  std::unique_ptr<internal::Checkpointer> checkpointer_;  // destroyed before the writer
  std::unique_ptr<internal::IntegrityCheck> integrity_;   // uses the writer: destroyed first
  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<internal::Db>> readers_;  // guarded by readers_mu_
};

}  // namespace refbroker::storage

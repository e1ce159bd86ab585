#pragma once
// PostgresStore: the Store on a PostgreSQL 15 server (libpq), for alliances whose IT department
// runs and backs up the database, and (later) for several brokers sharing one database.
//
// Writes go through a PgWriter (one connection, group commit with synchronous_commit=on);
// reads use a small pool of connections, each read one REPEATABLE READ READ ONLY transaction.
// The schema lives in its own PostgreSQL schema (options.schema) and is created and migrated by
// the broker at start (postgres_schema.h). A lost connection is UNAVAILABLE for the calls it
// hits, never an acknowledgement, and the next call reconnects.
//
// Across brokers (several writers on one database) the store already keeps its invariants:
// leases take rows FOR UPDATE SKIP LOCKED; a new consumer group and the messages enqueued
// meanwhile are ordered by a per-queue advisory lock; a result's look at the patient's earlier
// results is serialized per patient and item; the audit chain has one locked head.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "broker/storage/internal/pg_conn.h"
#include "broker/storage/internal/pg_listener.h"
#include "broker/storage/internal/pg_writer.h"
#include "broker/storage/store.h"

namespace refbroker::storage {

struct PostgresOptions {
  std::string conninfo;              // libpq connection string, e.g. "host=db port=5432 dbname=rb"
  std::string schema = "refbroker";  // PostgreSQL schema holding the tables
  size_t max_batch = 256;            // most requests in one group commit
  size_t readers = 4;                // read connections
  bool listen = true;                // LISTEN for other brokers' enqueues (SetEnqueueListener)
  // Partitioning by alliance: the alliance of an institution (or of an alliance's own id, for
  // its operator queue); "" = none known (rows go to the default partition). The broker passes
  // its registry's; `alliances` get a partition of every partitioned table at start.
  std::function<std::string(const std::string& code)> alliance_of;
  std::vector<std::string> alliances;
};

class PostgresStore final : public Store {
 public:
  // Connects, creates the schema if needed and applies migrations (once, even when several
  // brokers start together).
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(const PostgresOptions& options);
  // Drops the schema and everything in it (tests use one schema per test).
  static absl::Status DropSchema(const std::string& conninfo, const std::string& schema);
  ~PostgresStore() override;

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
  // How many times the writer has waited for the database's answer (pipeline mode: one wait
  // answers every statement sent before it).
  uint64_t writer_round_trips() const { return writer_->round_trips(); }
  void SetEnqueueListener(EnqueueListener listener) override {
    if (listener_) listener_->SetCallback(std::move(listener));
  }

 private:
  PostgresStore() = default;
  // Runs `fn` on a pooled connection in one read-only snapshot; a lost connection is retried
  // once on a fresh one.
  absl::Status Read(const std::function<absl::Status(internal::PgConn&)>& fn);
  // Runs `fn` in the next group commit, with the calling thread's pending audit entries
  // (AuditScope) appended with it; returns when it has committed.
  absl::Status WriteTxn(std::function<absl::Status(internal::PgTx&)> fn);
  // The bodies of Lease and AckBatch, inside a transaction WriteTxn runs (AckThenLease runs
  // both in one).
  absl::Status LeaseIn(internal::PgTx& tx, const LeaseRequest& req, LeaseResult& result);
  absl::Status AckIn(internal::PgTx& tx, const std::string& queue, const std::string& group,
                     const std::vector<uint64_t>& sequences, Micros now,
                     const AckFollowUp& follow_up, std::vector<AckResult>& results);
  // The alliance whose partition holds rows of `code` (an institution, or an alliance id).
  std::string AllianceOf(const std::string& code) const;
  // The alliance of a queue's owner ("owner/kind").
  std::string QueueAlliance(const std::string& queue) const;
  // A referral's row, event and messages (ChangeReferral, and an ack's follow-up). With
  // `locked_alliance`, the transaction holds the row locked (FOR UPDATE) and it is in that
  // alliance's partition: the update is queued, not waited for.
  absl::Status WriteChange(internal::PgConn& conn, const ReferralChange& c,
                           const std::string* locked_alliance = nullptr) const;

  std::function<std::string(const std::string&)> alliance_of_;
  std::unique_ptr<internal::PgListener> listener_;
  std::unique_ptr<internal::PgWriter> writer_;
  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<internal::PgConn>> readers_;  // guarded by readers_mu_
};

}  // namespace refbroker::storage

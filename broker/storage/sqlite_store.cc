#include "broker/storage/sqlite_store.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <limits>
#include <map>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/storage/group_message_state.h"
#include "broker/storage/internal/list_query.h"
#include "broker/storage/internal/patient_no.h"
#include "broker/storage/sqlite_schema.h"

namespace refbroker::storage {
namespace {

using internal::Db;
using internal::Stmt;
namespace schema = sqlite_schema;

constexpr int kSchemaVersion = sizeof(schema::kMigrations) / sizeof(schema::kMigrations[0]);

absl::Status Configure(Db& db) {
  RETURN_IF_ERROR(db.Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(db.Exec("PRAGMA synchronous=FULL"));
  // Savepoint journals of a group commit stay in memory instead of spilling to temp files
  // (recognition_bench at 1M records: load 130 s -> 117 s).
  RETURN_IF_ERROR(db.Exec("PRAGMA temp_store=MEMORY"));
  // Page cache and mmap stay at SQLite's defaults: recognition_bench at 1M records measured
  // lower publish rates with a larger writer cache (64 MiB, 256 MiB, 1 GiB) and with mmap on
  // either side, on this 2-core machine. What mattered was taking checkpoints out of the
  // writer (see Checkpointer).
  return db.Exec("PRAGMA foreign_keys=OFF");
}

absl::StatusOr<int> UserVersion(Db& db) {
  ASSIGN_OR_RETURN(auto st, db.Prepare("PRAGMA user_version"));
  ASSIGN_OR_RETURN(bool row, st->Step());
  return row ? static_cast<int>(st->Int(0)) : 0;
}

absl::Status Migrate(Db& db) {
  ASSIGN_OR_RETURN(int version, UserVersion(db));
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("storage: database schema version ", version,
                                                      " is newer than this broker (",
                                                      kSchemaVersion, ")"));
  }
  if (version == 0) RETURN_IF_ERROR(db.Exec("PRAGMA auto_vacuum=INCREMENTAL; VACUUM"));
  // v7 and v9 number the stored results' and audit entries' patients with it
  // (internal/patient_no.h).
  if (int rc = internal::RegisterPatientNoFunction(db.raw()); rc != SQLITE_OK) {
    return internal::SqliteError(rc, db.raw(), "register patient_no");
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    // An upgrade's migration of a large store takes minutes (OPERATIONS.md, section 6): say
    // what the broker is doing before it serves, and how long each step took.
    if (version > 0) spdlog::info("storage: migrating the schema to v{}", v + 1);
    const auto start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(db.Exec(absl::StrCat("BEGIN IMMEDIATE;", schema::kMigrations[v],
                                         "PRAGMA user_version=", v + 1, ";COMMIT;")));
    if (version > 0) {
      spdlog::info("storage: schema v{} in {:.1f} s", v + 1,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  return absl::OkStatus();
}

ReferralRecord ReadReferral(const Stmt& st) {
  ReferralRecord r;
  r.id = st.Text(0);
  r.sender = st.Text(1);
  r.receiver = st.Text(2);
  r.client_request_id = st.Text(3);
  r.request_digest = st.Text(4);
  r.state = static_cast<int>(st.Int(5));
  r.priority = static_cast<int>(st.Int(6));
  r.submitted_at = st.Int(7);
  r.updated_at = st.Int(8);
  r.body = st.Text(9);
  r.direction = static_cast<int>(st.Int(10));
  r.journey_id = st.Text(11);
  r.alliance = st.Text(12);
  r.decision_due_at = st.IsNull(13) ? 0 : st.Int(13);
  r.version = st.Int(14);
  return r;
}

constexpr char kReferralColumns[] =
    "id, sender, receiver, client_request_id, request_digest, state, priority, submitted_at, "
    "updated_at, body, direction, journey_id, alliance, decision_due_at, version";

absl::StatusOr<std::optional<ReferralRecord>> FindByRequestId(Db& db, const std::string& sender,
                                                              const std::string& request_id) {
  static const std::string sql = absl::StrCat("SELECT ", kReferralColumns,
                                              " FROM referrals WHERE sender=? AND "
                                              "client_request_id=?");
  ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
  st->Bind(1, sender).Bind(2, request_id);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<ReferralRecord>();
  return std::optional<ReferralRecord>(ReadReferral(*st));
}

absl::Status InsertReferral(Db& db, const ReferralRecord& r) {
  ASSIGN_OR_RETURN(auto st,
                   db.Prepare("INSERT INTO referrals(id, sender, receiver, client_request_id, "
                              "request_digest, state, priority, submitted_at, updated_at, body, "
                              "direction, journey_id, alliance, decision_due_at, version) "
                              "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,NULLIF(?,0),1)"));
  st->Bind(1, r.id).Bind(2, r.sender).Bind(3, r.receiver).Bind(4, r.client_request_id);
  st->BindBlob(5, r.request_digest).Bind(6, r.state).Bind(7, r.priority);
  st->Bind(8, r.submitted_at).Bind(9, r.updated_at).BindBlob(10, r.body);
  st->Bind(11, r.direction).Bind(12, r.journey_id).Bind(13, r.alliance);
  st->Bind(14, r.decision_due_at);
  return st->Run();
}

absl::Status InsertEvent(Db& db, const ReferralEventRecord& e) {
  ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO referral_events(referral_id, actor, "
                                       "client_request_id, action, at, body) VALUES(?,?,?,?,?,?)"));
  st->Bind(1, e.referral_id).Bind(2, e.actor).Bind(3, e.client_request_id).Bind(4, e.action);
  st->Bind(5, e.at).BindBlob(6, e.body);
  return st->Run();
}

ReferralEventRecord ReadEvent(const Stmt& st) {
  ReferralEventRecord e;
  e.referral_id = st.Text(0);
  e.actor = st.Text(1);
  e.client_request_id = st.Text(2);
  e.action = static_cast<int>(st.Int(3));
  e.at = st.Int(4);
  e.body = st.Text(5);
  return e;
}

// `client_request_id<>''` lets SQLite use the partial index of request ids: without it every
// lookup scanned every event (O(history) per transition; the soak's latency drift).
absl::StatusOr<std::optional<ReferralEventRecord>> FindEvent(Db& db, const std::string& actor,
                                                             const std::string& request_id) {
  ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT referral_id, actor, client_request_id, action, at, "
                                       "body FROM referral_events WHERE actor=? AND "
                                       "client_request_id=? AND client_request_id<>''"));
  st->Bind(1, actor).Bind(2, request_id);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<ReferralEventRecord>();
  return std::optional<ReferralEventRecord>(ReadEvent(*st));
}

// Appends a message and fans it out to every existing consumer group of its queue.
absl::StatusOr<uint64_t> Enqueue(Db& db, const NewMessage& m, Micros now) {
  ASSIGN_OR_RETURN(auto ins, db.Prepare("INSERT INTO messages(queue, priority, subject_id, "
                                        "payload, enqueued_at) VALUES(?,?,?,?,?)"));
  ins->Bind(1, m.queue).Bind(2, m.priority).Bind(3, m.subject_id).BindBlob(4, m.payload);
  ins->Bind(5, now);
  RETURN_IF_ERROR(ins->Run());
  uint64_t seq = static_cast<uint64_t>(db.LastInsertRowid());
  ASSIGN_OR_RETURN(auto fan,
                   db.Prepare("INSERT INTO group_messages(queue, grp, seq, priority, state, "
                              "attempts, visible_at, last_error, state_at) "
                              "SELECT queue, grp, ?, ?, 0, 0, 0, '', ? FROM consumer_groups "
                              "WHERE queue=?"));
  fan->Bind(1, static_cast<int64_t>(seq)).Bind(2, m.priority).Bind(3, now).Bind(4, m.queue);
  RETURN_IF_ERROR(fan->Run());
  return seq;
}

}  // namespace

absl::Status SqliteInsertAudit(Db& db, std::vector<AuditRow>& rows);  // sqlite_audit.cc

absl::StatusOr<uint64_t> SqliteEnqueue(Db& db, const NewMessage& m, Micros now) {
  return Enqueue(db, m, now);
}

namespace {

// Expired leases that used up their attempts become dead letters.
// The lease path's queries name the partial index of pending rows: without it SQLite searched
// the group's primary key and so stepped over every acked row the group retains (a week of
// traffic by default) on every lease. refbench: unary submits 206/s -> 45/s over three runs.
absl::Status DeadLetterExpired(Db& db, const LeaseRequest& req) {
  ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE group_messages INDEXED BY group_messages_pending "
                                       "SET state=3, state_at=?1, last_error="
                                       "CASE WHEN last_error='' THEN 'ack deadline exceeded' ELSE "
                                       "last_error END WHERE queue=?2 AND grp=?3 AND state<2 AND "
                                       "state=1 AND visible_at<=?1 AND attempts>=?4"));
  st->Bind(1, req.now).Bind(2, req.queue).Bind(3, req.group).Bind(4, req.max_attempts);
  return st->Run();
}

absl::StatusOr<std::optional<Micros>> NextVisibleAt(Db& db, const std::string& queue,
                                                    const std::string& group, Micros now) {
  ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT MIN(visible_at) FROM group_messages INDEXED BY "
                                       "group_messages_pending WHERE queue=? AND grp=? AND "
                                       "state<2 AND visible_at>?"));
  st->Bind(1, queue).Bind(2, group).Bind(3, now);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row || st->IsNull(0)) return std::optional<Micros>();
  return std::optional<Micros>(st->Int(0));
}

// The sequence of the newest audit entry the store holds (or has archived): every write a
// client was told is durable carries one.
absl::StatusOr<uint64_t> NewestAuditSequence(Db& db) {
  ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT MAX(IFNULL((SELECT MAX(seq) FROM audit_log), 0), "
                                       "IFNULL((SELECT MAX(upto_seq) FROM audit_archives), 0))"));
  ASSIGN_OR_RETURN(bool row, st->Step());
  uint64_t newest = row ? static_cast<uint64_t>(st->Int(0)) : 0;
  st->Reset();
  return newest;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const SqliteOptions& options) {
  // Before anything writes to it (the migrations).
  RETURN_IF_ERROR(internal::RefuseIfNotedDamaged(options.path));
  ASSIGN_OR_RETURN(auto writer_db, Db::Open(options.path, /*read_only=*/false));
  RETURN_IF_ERROR(Configure(*writer_db));
  RETURN_IF_ERROR(Migrate(*writer_db));
  writer_db->LogSlowStatements(options.slow_statement_ms, "writer");
  std::unique_ptr<SqliteStore> store(new SqliteStore());
  for (size_t i = 0; i < std::max<size_t>(1, options.readers); ++i) {
    ASSIGN_OR_RETURN(auto reader, Db::Open(options.path, /*read_only=*/true));
    reader->LogSlowStatements(options.slow_statement_ms, absl::StrCat("reader ", i + 1));
    store->readers_.push_back(std::move(reader));
  }
  if (options.checkpoint_interval_ms > 0) {
    store->checkpoint_progress_ = std::make_shared<internal::CheckpointProgress>();
    store->checkpoint_progress_->fallback_frames = options.fallback_checkpoint_pages;
    internal::Checkpointer::InstallWriterHook(*writer_db, store->checkpoint_progress_.get());
    ASSIGN_OR_RETURN(auto checkpoint_db, Db::Open(options.path, /*read_only=*/false));
    RETURN_IF_ERROR(Configure(*checkpoint_db));
    checkpoint_db->LogSlowStatements(options.slow_statement_ms, "checkpoint");
    store->checkpointer_ = std::make_unique<internal::Checkpointer>(
        std::move(checkpoint_db), std::chrono::milliseconds(options.checkpoint_interval_ms),
        store->checkpoint_progress_);
  }
  RETURN_IF_ERROR(
      writer_db->Exec(absl::StrCat("PRAGMA journal_size_limit=", options.wal_size_limit_bytes)));
  // A store that comes back shorter than what it acknowledged is refused, not served.
  ASSIGN_OR_RETURN(store->marker_, internal::AckMarker::Open(options.path + ".acked"));
  ASSIGN_OR_RETURN(uint64_t newest, NewestAuditSequence(*writer_db));
  if (std::optional<uint64_t> acked = store->marker_->previous(); acked && newest < *acked) {
    return absl::DataLossError(absl::StrCat(
        "storage: the store ends at audit entry ", newest, " but entry ", *acked,
        " was acknowledged (noted in ", store->marker_->path(),
        "): the end of its write-ahead log is damaged, or the file was replaced by an older "
        "one. A store that lost acknowledged writes is not served. Keep the damaged files for "
        "analysis and restore the latest backup (OPERATIONS.md, section 5); if an older store "
        "was put in place on purpose, move the note aside."));
  }
  store->writer_ =
      std::make_unique<internal::GroupCommitWriter>(std::move(writer_db), options.max_batch);
  store->writer_->SetAfterCommit([marker = store->marker_.get()](Db& db) {
    auto sequence = NewestAuditSequence(db);
    if (sequence.ok()) marker->Note(*sequence);
  });
  // The structure is checked behind the open store, not before it: a damaged file found then
  // is latched (every write DATA_LOSS, Health() failing), so it is not written to further, and
  // noted beside the store (<db>.damaged), so that it is not opened again until restored.
  ASSIGN_OR_RETURN(auto check_db, Db::Open(options.path, /*read_only=*/true));
  store->integrity_ = std::make_unique<internal::IntegrityCheck>(
      std::move(check_db),
      [writer = store->writer_.get(), path = options.path](const absl::Status& s, double seconds) {
        if (s.ok()) {
          spdlog::info("storage: integrity check of {} passed in {:.1f} s", path, seconds);
          return;
        }
        // Noted first: once the store reports itself unhealthy the note is there, and a broker
        // that dies in between does not serve the file again either.
        absl::Status noted = internal::NoteDamage(path, s);
        writer->Fail(s);
        spdlog::critical(
            "{} ({}): writes are refused; restore the latest backup. {}", std::string(s.message()),
            path,
            noted.ok() ? "Noted in " + internal::DamageNotePath(path) +
                             ": the broker will not serve this store again until it is restored"
                       : "The note could not be written (" + std::string(noted.message()) +
                             "): a restarted broker would serve it until the check finds it again");
      });
  return store;
}

SqliteStore::~SqliteStore() = default;

absl::Status SqliteStore::Read(const std::function<absl::Status(Db&)>& fn) {
  std::unique_ptr<Db> db;
  {
    std::unique_lock<std::mutex> lock(readers_mu_);
    readers_cv_.wait(lock, [&] { return !readers_.empty(); });
    db = std::move(readers_.back());
    readers_.pop_back();
  }
  absl::Status s = db->Exec("BEGIN");
  if (s.ok()) {
    s = fn(*db);
    (void)db->Exec("COMMIT");
  }
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    readers_.push_back(std::move(db));
  }
  readers_cv_.notify_one();
  return s;
}

absl::Status SqliteStore::Health() { return writer_->latched_error(); }

absl::StatusOr<SubmitResult> SqliteStore::SubmitReferral(const ReferralRecord& referral,
                                                         const ReferralEventRecord& event,
                                                         const std::vector<NewMessage>& messages) {
  SubmitResult result;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto existing,
                     FindByRequestId(db, referral.sender, referral.client_request_id));
    if (existing) {
      if (existing->request_digest != referral.request_digest) {
        return absl::AlreadyExistsError(
            "referral.client_request_id: already used by this institution for a different "
            "referral");
      }
      result.referral = std::move(*existing);
      result.duplicate = true;
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(InsertReferral(db, referral));
    RETURN_IF_ERROR(InsertEvent(db, event));
    for (const NewMessage& m : messages) {
      ASSIGN_OR_RETURN(uint64_t seq, Enqueue(db, m, referral.submitted_at));
      (void)seq;
    }
    result.referral = referral;
    result.referral.version = 1;
    return absl::OkStatus();
  }));
  return result;
}

// One referral by id (GetReferral, and an ack's follow-up inside its transaction).
static const char* ReferralByIdSql() {
  static const std::string sql =
      absl::StrCat("SELECT ", kReferralColumns, " FROM referrals WHERE id=?");
  return sql.c_str();
}

absl::StatusOr<ReferralRecord> SqliteStore::GetReferral(const std::string& id) {
  ReferralRecord out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.Prepare(ReferralByIdSql()));
    st->Bind(1, id);
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return absl::NotFoundError(absl::StrCat("referral '", id, "' not found"));
    out = ReadReferral(*st);
    return absl::OkStatus();
  }));
  return out;
}

// The referral row, its event and its messages: ChangeReferral's writes, and an ack's
// follow-up.
static absl::Status WriteChange(Db& db, const ReferralChange& c) {
  ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE referrals SET state=?, receiver=?, "
                                       "decision_due_at=NULLIF(?,0), updated_at=?, body=?, "
                                       "version=version+1 WHERE id=? AND version=?"));
  up->Bind(1, c.state).Bind(2, c.receiver).Bind(3, c.decision_due_at).Bind(4, c.updated_at);
  up->BindBlob(5, c.body).Bind(6, c.referral_id).Bind(7, c.expected_version);
  RETURN_IF_ERROR(up->Run());
  if (db.Changes() == 0) {
    ASSIGN_OR_RETURN(auto q, db.Prepare("SELECT 1 FROM referrals WHERE id=?"));
    q->Bind(1, c.referral_id);
    ASSIGN_OR_RETURN(bool exists, q->Step());
    return exists ? absl::AbortedError("referral changed concurrently; retry")
                  : absl::NotFoundError(absl::StrCat("referral '", c.referral_id, "' not found"));
  }
  RETURN_IF_ERROR(InsertEvent(db, c.event));
  for (const NewMessage& m : c.messages) {
    ASSIGN_OR_RETURN(uint64_t seq, Enqueue(db, m, c.updated_at));
    (void)seq;
  }
  return absl::OkStatus();
}

absl::StatusOr<ChangeResult> SqliteStore::ChangeReferral(const ReferralChange& c) {
  ChangeResult result;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
    if (!c.event.client_request_id.empty()) {
      ASSIGN_OR_RETURN(auto earlier, FindEvent(db, c.event.actor, c.event.client_request_id));
      if (earlier) {
        if (earlier->referral_id != c.referral_id || earlier->action != c.event.action) {
          return absl::AlreadyExistsError(
              "client_request_id: already used by this institution for another request");
        }
        result.duplicate = true;
        result.event = std::move(*earlier);
        return absl::OkStatus();
      }
    }
    RETURN_IF_ERROR(WriteChange(db, c));
    result.event = c.event;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<std::optional<ReferralEventRecord>> SqliteStore::FindReferralEvent(
    const std::string& actor, const std::string& client_request_id) {
  std::optional<ReferralEventRecord> out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(out, FindEvent(db, actor, client_request_id));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ReferralEventRecord>> SqliteStore::ListReferralEvents(
    const std::string& referral_id) {
  std::vector<ReferralEventRecord> out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT referral_id, actor, client_request_id, action, "
                                         "at, body FROM referral_events WHERE referral_id=? "
                                         "ORDER BY seq"));
    st->Bind(1, referral_id);
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) { out.push_back(ReadEvent(row)); }));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ReferralRecord>> SqliteStore::ListReferrals(const ReferralQuery& q) {
  std::vector<ReferralRecord> out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.PrepareBuilt(internal::ReferralListSql(q, kReferralColumns)));
    st->Bind(1, q.party).Bind(2, q.alliance).Bind(3, q.institution).Bind(4, q.direction);
    st->Bind(5, q.state).Bind(6, q.priority).Bind(7, q.submitted_from).Bind(8, q.submitted_to);
    st->Bind(9, q.journey_id).Bind(10, q.after_submitted_at).Bind(11, q.after_id);
    st->Bind(12, static_cast<int64_t>(q.limit));
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) { out.push_back(ReadReferral(row)); }));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ReferralRecord>> SqliteStore::ListDueReferrals(Micros now,
                                                                          size_t limit) {
  std::vector<ReferralRecord> out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    static const std::string sql =
        absl::StrCat("SELECT ", kReferralColumns,
                     " FROM referrals WHERE decision_due_at IS NOT NULL AND decision_due_at<=? "
                     "ORDER BY decision_due_at LIMIT ?");
    ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
    st->Bind(1, now).Bind(2, static_cast<int64_t>(limit));
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) { out.push_back(ReadReferral(row)); }));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
SqliteStore::ListAckedButUndelivered(size_t limit) {
  std::vector<std::pair<std::string, std::string>> out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto pending, db.Prepare("SELECT 1 FROM pending_sweeps WHERE "
                                              "name='acked_but_undelivered'"));
    ASSIGN_OR_RETURN(bool sweep, pending->Step());
    pending->Reset();
    if (!sweep) return absl::OkStatus();
    // Runs at start, until it finds nothing (FinishDeliverySweep). From the acked side: one pass
    // over the group messages, and a message and a referral looked up by key for each acked one.
    // (From the SUBMITTED referrals, each needed a scan of its queue's messages, for there is no
    // index by subject: with 36,000 referrals queued undelivered the start-up sweep took more than
    // ten minutes.)
    ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT DISTINCT r.id, r.receiver FROM group_messages g "
                                         "JOIN messages m ON m.seq=g.seq JOIN referrals r ON "
                                         "r.id=m.subject_id WHERE g.state=2 AND r.state=1 AND "
                                         "m.queue=r.receiver || '/referrals' LIMIT ?"));
    st->Bind(1, static_cast<int64_t>(limit));
    RETURN_IF_ERROR(
        st->ForEachRow([&](const Stmt& row) { out.emplace_back(row.Text(0), row.Text(1)); }));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteStore::FinishDeliverySweep() {
  return WriteTxn([](Db& db) {
    return db.Exec("DELETE FROM pending_sweeps WHERE name='acked_but_undelivered'");
  });
}

absl::StatusOr<std::optional<Micros>> SqliteStore::NextDecisionDue() {
  std::optional<Micros> out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT MIN(decision_due_at) FROM referrals WHERE "
                                         "decision_due_at IS NOT NULL"));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (row && !st->IsNull(0)) out = st->Int(0);
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteStore::EnsureGroup(const std::string& queue, const std::string& group,
                                      Micros now) {
  return WriteTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto ins, db.Prepare("INSERT OR IGNORE INTO consumer_groups(queue, grp, "
                                          "created_at) VALUES(?,?,?)"));
    ins->Bind(1, queue).Bind(2, group).Bind(3, now);
    RETURN_IF_ERROR(ins->Run());
    if (db.Changes() == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto fill,
                     db.Prepare("INSERT INTO group_messages(queue, grp, seq, priority, state, "
                                "attempts, visible_at, last_error, state_at) "
                                "SELECT queue, ?, seq, priority, 0, 0, 0, '', ? FROM messages "
                                "WHERE queue=?"));
    fill->Bind(1, group).Bind(2, now).Bind(3, queue);
    return fill->Run();
  });
}

absl::StatusOr<uint64_t> SqliteStore::Replay(const std::string& queue, const std::string& group,
                                             uint64_t from_sequence, Micros now) {
  uint64_t count = 0;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto reset,
                     db.Prepare("UPDATE group_messages SET state=0, attempts=0, "
                                "visible_at=0, last_error='', state_at=? WHERE queue=? AND "
                                "grp=? AND seq>=?"));
    reset->Bind(1, now).Bind(2, queue).Bind(3, group).Bind(4, static_cast<int64_t>(from_sequence));
    RETURN_IF_ERROR(reset->Run());
    count = static_cast<uint64_t>(db.Changes());
    ASSIGN_OR_RETURN(auto fill,
                     db.Prepare("INSERT OR IGNORE INTO group_messages(queue, grp, seq, "
                                "priority, state, attempts, visible_at, last_error, state_at) "
                                "SELECT queue, ?, seq, priority, 0, 0, 0, '', ? FROM messages "
                                "WHERE queue=? AND seq>=?"));
    fill->Bind(1, group).Bind(2, now).Bind(3, queue).Bind(4, static_cast<int64_t>(from_sequence));
    RETURN_IF_ERROR(fill->Run());
    count += static_cast<uint64_t>(db.Changes());
    return absl::OkStatus();
  }));
  return count;
}

absl::StatusOr<LeaseResult> SqliteStore::Lease(const LeaseRequest& req) {
  LeaseResult result;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) { return LeaseIn(db, req, result); }, /*late=*/true));
  return result;
}

absl::StatusOr<AckLeaseResult> SqliteStore::AckThenLease(const std::vector<uint64_t>& sequences,
                                                         const AckFollowUp& follow_up,
                                                         const LeaseRequest& lease) {
  AckLeaseResult out;
  RETURN_IF_ERROR(WriteTxn(
      [&](Db& db) -> absl::Status {
        RETURN_IF_ERROR(
            AckIn(db, lease.queue, lease.group, sequences, lease.now, follow_up, out.acks));
        return LeaseIn(db, lease, out.leased);
      },
      /*late=*/true));
  return out;
}

absl::Status SqliteStore::LeaseIn(Db& db, const LeaseRequest& req, LeaseResult& result) {
  result = LeaseResult();  // the transaction may run again
  RETURN_IF_ERROR(DeadLetterExpired(db, req));
  ASSIGN_OR_RETURN(auto pick,
                   db.Prepare("SELECT gm.seq, gm.priority, gm.attempts, m.subject_id, "
                              "m.payload, m.enqueued_at FROM group_messages gm INDEXED BY "
                              "group_messages_pending JOIN messages m ON m.seq=gm.seq "
                              "WHERE gm.queue=? AND gm.grp=? AND gm.state<2 AND "
                              "gm.visible_at<=? ORDER BY gm.priority, gm.seq LIMIT ?"));
  pick->Bind(1, req.queue).Bind(2, req.group).Bind(3, req.now);
  pick->Bind(4, static_cast<int64_t>(req.max_messages));
  RETURN_IF_ERROR(pick->ForEachRow([&](const Stmt& row) {
    LeasedMessage m;
    m.sequence = static_cast<uint64_t>(row.Int(0));
    m.queue = req.queue;
    m.priority = static_cast<int>(row.Int(1));
    m.attempt = static_cast<uint32_t>(row.Int(2)) + 1;
    m.subject_id = row.Text(3);
    m.payload = row.Text(4);
    m.enqueued_at = row.Int(5);
    m.lease_until = req.lease_until;
    result.messages.push_back(std::move(m));
  }));
  ASSIGN_OR_RETURN(auto take,
                   db.Prepare("UPDATE group_messages SET state=1, attempts=attempts+1, "
                              "visible_at=?, state_at=? WHERE queue=? AND grp=? AND seq=?"));
  for (const LeasedMessage& m : result.messages) {
    take->Bind(1, req.lease_until).Bind(2, req.now).Bind(3, req.queue).Bind(4, req.group);
    take->Bind(5, static_cast<int64_t>(m.sequence));
    RETURN_IF_ERROR(take->Run());
  }
  if (!req.reader.empty() && !result.messages.empty()) {
    std::vector<AuditRow> audit;
    for (const LeasedMessage& m : result.messages) {
      audit.push_back(DeliverAuditRow(req, m.subject_id));
    }
    RETURN_IF_ERROR(SqliteInsertAudit(db, audit));
  }
  ASSIGN_OR_RETURN(result.next_visible_at, NextVisibleAt(db, req.queue, req.group, req.now));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AckResult>> SqliteStore::AckBatch(const std::string& queue,
                                                             const std::string& group,
                                                             const std::vector<uint64_t>& sequences,
                                                             Micros now,
                                                             const AckFollowUp& follow_up) {
  std::vector<AckResult> results;
  RETURN_IF_ERROR(WriteTxn(
      [&](Db& db) { return AckIn(db, queue, group, sequences, now, follow_up, results); }));
  return results;
}

absl::Status SqliteStore::AckIn(Db& db, const std::string& queue, const std::string& group,
                                const std::vector<uint64_t>& sequences, Micros now,
                                const AckFollowUp& follow_up, std::vector<AckResult>& results) {
  results.clear();  // the transaction may run again
  ASSIGN_OR_RETURN(auto q, db.Prepare("SELECT gm.state, m.subject_id FROM group_messages gm "
                                      "JOIN messages m ON m.seq=gm.seq WHERE gm.queue=? AND "
                                      "gm.grp=? AND gm.seq=?"));
  ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE group_messages SET state=2, state_at=? WHERE "
                                       "queue=? AND grp=? AND seq=?"));
  for (uint64_t sequence : sequences) {
    AckResult& result = results.emplace_back();
    result.sequence = sequence;
    q->Reset();
    q->Bind(1, queue).Bind(2, group).Bind(3, static_cast<int64_t>(sequence));
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) {
      result.found = false;
      continue;
    }
    result.subject_id = q->Text(1);
    if (q->Int(0) == kAcked) continue;
    up->Bind(1, now).Bind(2, queue).Bind(3, group).Bind(4, static_cast<int64_t>(sequence));
    RETURN_IF_ERROR(up->Run());
    result.first_ack = true;
    if (follow_up && !result.subject_id.empty()) {
      ASSIGN_OR_RETURN(auto get, db.Prepare(ReferralByIdSql()));
      get->Bind(1, result.subject_id);
      ASSIGN_OR_RETURN(bool found, get->Step());
      if (!found) continue;
      result.follow_up = follow_up(ReadReferral(*get));
      get->Reset();
      if (result.follow_up) RETURN_IF_ERROR(WriteChange(db, *result.follow_up));
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::Nack(const std::string& queue, const std::string& group,
                               uint64_t sequence, const std::string& reason, uint32_t max_attempts,
                               Micros retry_at, Micros now) {
  return WriteTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto q, db.Prepare("SELECT state, attempts FROM group_messages WHERE "
                                        "queue=? AND grp=? AND seq=?"));
    q->Bind(1, queue).Bind(2, group).Bind(3, static_cast<int64_t>(sequence));
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) {
      return absl::NotFoundError(
          absl::StrCat("sequence ", sequence, " is not in group '", group, "' of ", queue));
    }
    int state = static_cast<int>(q->Int(0));
    if (state == kAcked || state == kDead) return absl::OkStatus();
    bool dead = q->Int(1) >= static_cast<int64_t>(max_attempts);
    ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE group_messages SET state=?, visible_at=?, "
                                         "last_error=?, state_at=? WHERE queue=? AND grp=? AND "
                                         "seq=?"));
    up->Bind(1, dead ? kDead : kReady).Bind(2, retry_at);
    up->Bind(3, reason.empty() ? std::string("nacked") : reason).Bind(4, now);
    up->Bind(5, queue).Bind(6, group).Bind(7, static_cast<int64_t>(sequence));
    return up->Run();
  });
}

absl::Status SqliteStore::Release(const std::string& queue, const std::string& group,
                                  const std::vector<uint64_t>& sequences, Micros now) {
  if (sequences.empty()) return absl::OkStatus();
  return WriteTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE group_messages SET state=0, visible_at=?, "
                                         "state_at=? WHERE queue=? AND grp=? AND seq=? AND "
                                         "state=1"));
    for (uint64_t seq : sequences) {
      up->Bind(1, now).Bind(2, now).Bind(3, queue).Bind(4, group);
      up->Bind(5, static_cast<int64_t>(seq));
      RETURN_IF_ERROR(up->Run());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<QueueStats>> SqliteStore::ListQueueStats() {
  // Every metrics scrape, status page and `refctl queues` asks this, so it reads no message it
  // does not need: the counts schema v11's triggers keep (queue_counts), and per queue or group
  // the oldest waiting message found through an index, a few searches each, however many are
  // retained. A lease past its deadline counts as in flight until it is delivered again.
  std::map<std::string, QueueStats> by_queue;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto enqueued, db.Prepare("SELECT enqueued_at FROM messages WHERE seq=?"));
    auto enqueued_at = [&](int64_t seq) -> absl::StatusOr<Micros> {
      enqueued->Bind(1, seq);
      ASSIGN_OR_RETURN(bool row, enqueued->Step());
      Micros at = row ? enqueued->Int(0) : 0;
      enqueued->Reset();
      return at;
    };
    ASSIGN_OR_RETURN(auto counts,
                     db.Prepare("SELECT queue, grp, state, n FROM queue_counts WHERE n<>0"));
    std::map<std::pair<std::string, std::string>, GroupStats> groups;
    RETURN_IF_ERROR(counts->ForEachRow([&](const Stmt& row) {
      const auto n = static_cast<uint64_t>(row.Int(3));
      if (row.Int(2) < 0) {
        QueueStats& q = by_queue[row.Text(0)];
        q.queue = row.Text(0);
        q.retained = n;
        q.unconsumed = n;  // corrected below when the queue has groups
        return;
      }
      GroupStats& g = groups[{row.Text(0), row.Text(1)}];
      if (row.Int(2) == 0) g.ready = n;
      if (row.Int(2) == 1) g.in_flight = n;
      if (row.Int(2) == 3) g.dead = n;
    }));
    ASSIGN_OR_RETURN(auto names, db.Prepare("SELECT queue, grp FROM consumer_groups"));
    RETURN_IF_ERROR(names->ForEachRow([&](const Stmt& row) {
      groups[{row.Text(0), row.Text(1)}];  // a group with nothing counted is listed too
    }));
    // The oldest message of a queue without groups, by the queue's index.
    ASSIGN_OR_RETURN(auto first, db.Prepare("SELECT MIN(seq) FROM messages WHERE queue=?"));
    for (auto& [name, q] : by_queue) {
      auto group = groups.lower_bound({name, ""});
      if (group != groups.end() && group->first.first == name) continue;
      first->Bind(1, name);
      ASSIGN_OR_RETURN(bool row, first->Step());
      int64_t seq = row && !first->IsNull(0) ? first->Int(0) : 0;
      first->Reset();
      if (seq != 0) {
        ASSIGN_OR_RETURN(q.oldest_unconsumed_at, enqueued_at(seq));
      }
    }
    // A group's oldest waiting message: the first of each priority in the pending index (a
    // search per priority present, not a pass over the waiting messages).
    ASSIGN_OR_RETURN(auto next, db.Prepare("SELECT priority, seq FROM group_messages INDEXED BY "
                                           "group_messages_pending WHERE queue=?1 AND grp=?2 AND "
                                           "state<2 AND priority>?3 ORDER BY priority, seq "
                                           "LIMIT 1"));
    for (auto& [key, g] : groups) {
      QueueStats& q = by_queue[key.first];
      q.queue = key.first;
      q.unconsumed = 0;
      q.oldest_unconsumed_at = 0;
      g.group = key.second;
      int64_t oldest = 0;
      int64_t after = std::numeric_limits<int64_t>::min();
      for (;;) {
        next->Bind(1, key.first).Bind(2, key.second).Bind(3, after);
        ASSIGN_OR_RETURN(bool row, next->Step());
        if (row) {
          after = next->Int(0);
          if (oldest == 0 || next->Int(1) < oldest) oldest = next->Int(1);
        }
        next->Reset();
        if (!row) break;
      }
      if (oldest != 0) {
        ASSIGN_OR_RETURN(g.oldest_enqueued_at, enqueued_at(oldest));
      }
      q.groups.push_back(std::move(g));
    }
    return absl::OkStatus();
  }));
  std::vector<QueueStats> out;
  for (auto& [name, q] : by_queue) out.push_back(std::move(q));
  return out;
}

absl::StatusOr<DeadlineBreaches> SqliteStore::CountDeadlineBreaches(
    const DeadlineBreachFilter& filter) {
  // Through the partial indexes of the open work: referrals_escalated holds only the escalated
  // referrals (ESCALATED 8, v10), consults_open only the open consults (REQUESTED 1, ACCEPTED 2,
  // SCHEDULED 4, v6). A consult was escalated when its history has a CONSULT_ESCALATE (7)
  // event: the broker's escalation is the only way to it, and nothing takes it back.
  DeadlineBreaches out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto referrals,
                     db.Prepare("SELECT receiver, COUNT(*) FROM referrals INDEXED BY "
                                "referrals_escalated WHERE state=8 AND (?1='' OR alliance=?1) "
                                "AND (?2='' OR receiver=?2) GROUP BY receiver"));
    referrals->Bind(1, filter.alliance).Bind(2, filter.owner);
    RETURN_IF_ERROR(referrals->ForEachRow(
        [&](const Stmt& row) { out.referrals[row.Text(0)] = static_cast<uint64_t>(row.Int(1)); }));
    ASSIGN_OR_RETURN(
        auto consults,
        db.Prepare("SELECT target, COUNT(*) FROM consults INDEXED BY consults_open "
                   "WHERE state IN (1, 2, 4) AND (?1='' OR alliance=?1) AND (?2='' OR target=?2) "
                   "AND EXISTS(SELECT 1 FROM consult_events e WHERE e.consult_id=consults.id "
                   "AND e.action=7) GROUP BY target"));
    consults->Bind(1, filter.alliance).Bind(2, filter.owner);
    return consults->ForEachRow(
        [&](const Stmt& row) { out.consults[row.Text(0)] = static_cast<uint64_t>(row.Int(1)); });
  }));
  return out;
}

absl::StatusOr<std::vector<DeadLetterRecord>> SqliteStore::ListDeadLetters(
    const DeadLetterFilter& filter) {
  std::vector<DeadLetterRecord> out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st,
                     db.Prepare("SELECT gm.queue, gm.grp, gm.seq, m.subject_id, gm.attempts, "
                                "gm.last_error, m.enqueued_at, gm.state_at FROM group_messages "
                                "gm JOIN messages m ON m.seq=gm.seq WHERE gm.state=3 AND "
                                "(?1='' OR gm.queue=?1) AND (?2='' OR gm.grp=?2) "
                                "ORDER BY gm.state_at, gm.seq LIMIT ?3"));
    st->Bind(1, filter.queue).Bind(2, filter.group).Bind(3, static_cast<int64_t>(filter.limit));
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) {
      DeadLetterRecord d;
      d.queue = row.Text(0);
      d.group = row.Text(1);
      d.sequence = static_cast<uint64_t>(row.Int(2));
      d.subject_id = row.Text(3);
      d.attempts = static_cast<uint32_t>(row.Int(4));
      d.last_error = row.Text(5);
      d.enqueued_at = row.Int(6);
      d.dead_at = row.Int(7);
      out.push_back(std::move(d));
    }));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<uint64_t> SqliteStore::RequeueDeadLetters(const std::string& queue,
                                                         const std::string& group,
                                                         uint64_t sequence, Micros now) {
  uint64_t count = 0;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.Prepare("UPDATE group_messages INDEXED BY group_messages_dead "
                                         "SET state=0, attempts=0, visible_at=0, last_error='', "
                                         "state_at=?1 WHERE queue=?2 AND grp=?3 AND state=3 AND "
                                         "(?4=0 OR seq=?4)"));
    st->Bind(1, now).Bind(2, queue).Bind(3, group).Bind(4, static_cast<int64_t>(sequence));
    RETURN_IF_ERROR(st->Run());
    count = static_cast<uint64_t>(db.Changes());
    if (count == 0 && sequence != 0) {
      return absl::NotFoundError(absl::StrCat(
          "sequence ", sequence, " is not a dead letter of group '", group, "' of ", queue));
    }
    return absl::OkStatus();
  }));
  return count;
}

absl::StatusOr<uint64_t> SqliteStore::Prune(Micros cutoff) {
  // The writer is never held by the search: candidates are picked on a reader connection and
  // deleted in small transactions, between which other writes go on. (Picking them inside one
  // write transaction scanned the whole messages table for `enqueued_at < cutoff`: with
  // 1,000,000 referrals queued it held every submit for 8.4 s, every five minutes.)
  // Retention counts from the last group's ack: a message goes once every group acked it
  // before the cutoff (one acked just now is kept, so a late duplicate ack of a redelivered
  // copy still finds it). Sequences are assigned in enqueue order and a message is acked after
  // it was enqueued, so the candidates are those below the first one enqueued at or after the
  // cutoff, found by walking the table in sequence order.
  constexpr int64_t kBatch = 500;
  constexpr uint64_t kMostPerCall = 20000;  // the housekeeping tick calls again
  int64_t boundary = 0;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT IFNULL((SELECT seq FROM messages WHERE "
                                         "enqueued_at>=? ORDER BY seq LIMIT 1), "
                                         "(SELECT IFNULL(MAX(seq), 0) + 1 FROM messages))"));
    st->Bind(1, cutoff);
    ASSIGN_OR_RETURN(bool row, st->Step());
    boundary = row ? st->Int(0) : 0;
    st->Reset();
    return absl::OkStatus();
  }));
  uint64_t count = 0;
  int64_t after = 0;
  while (count < kMostPerCall) {
    std::vector<int64_t> picked;
    RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
      ASSIGN_OR_RETURN(auto st,
                       db.Prepare("SELECT m.seq FROM messages m WHERE m.seq>?1 AND m.seq<?2 AND "
                                  "EXISTS(SELECT 1 FROM consumer_groups cg WHERE "
                                  "cg.queue=m.queue) AND NOT EXISTS(SELECT 1 FROM "
                                  "group_messages gm WHERE gm.seq=m.seq AND (gm.state<>2 OR "
                                  "gm.state_at>=?4)) ORDER BY m.seq LIMIT ?3"));
      st->Bind(1, after).Bind(2, boundary).Bind(3, kBatch).Bind(4, cutoff);
      return st->ForEachRow([&](const Stmt& row) { picked.push_back(row.Int(0)); });
    }));
    if (picked.empty()) break;
    after = picked.back();
    uint64_t deleted = 0;
    RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
      deleted = 0;  // the transaction may run again
      // Checked again: a replay may have made an acked message deliverable meanwhile.
      ASSIGN_OR_RETURN(auto pending, db.Prepare("SELECT 1 FROM group_messages WHERE seq=? AND "
                                                "(state<>2 OR state_at>=?) LIMIT 1"));
      ASSIGN_OR_RETURN(auto del_groups, db.Prepare("DELETE FROM group_messages WHERE seq=?"));
      ASSIGN_OR_RETURN(auto del_message, db.Prepare("DELETE FROM messages WHERE seq=?"));
      for (int64_t seq : picked) {
        pending->Reset();
        pending->Bind(1, seq).Bind(2, cutoff);
        ASSIGN_OR_RETURN(bool still_pending, pending->Step());
        pending->Reset();
        if (still_pending) continue;
        del_groups->Bind(1, seq);
        RETURN_IF_ERROR(del_groups->Run());
        del_message->Bind(1, seq);
        RETURN_IF_ERROR(del_message->Run());
        deleted += static_cast<uint64_t>(db.Changes());
      }
      return absl::OkStatus();
    }));
    count += deleted;
  }
  if (count > 0) {
    // Give freed pages back to the file system (auto_vacuum=INCREMENTAL), a few at a time.
    for (int i = 0; i < 1000; ++i) {
      int64_t free_pages = 0;
      RETURN_IF_ERROR(writer_->Write([&](Db& db) -> absl::Status {
        RETURN_IF_ERROR(db.Exec("PRAGMA incremental_vacuum(2000)"));
        ASSIGN_OR_RETURN(auto st, db.Prepare("PRAGMA freelist_count"));
        ASSIGN_OR_RETURN(bool row, st->Step());
        free_pages = row ? st->Int(0) : 0;
        st->Reset();
        return absl::OkStatus();
      }));
      if (free_pages == 0) break;
    }
  }
  return count;
}

}  // namespace refbroker::storage

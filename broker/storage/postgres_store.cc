// PostgresStore: opening and migrating, reads, referrals and queues. Results, consults and the
// audit trail are in postgres_records.cc.

#include "broker/storage/postgres_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/common/status_macros.h"
#include "broker/storage/audit_scope.h"
#include "broker/storage/group_message_state.h"
#include "broker/storage/internal/list_query.h"
#include "broker/storage/postgres_schema.h"
#include "broker/storage/postgres_store_internal.h"

namespace refbroker::storage {

using internal::PgConn;
using internal::PgParams;
using internal::PgResult;
using internal::PgTx;

namespace {

constexpr int kSchemaVersion =
    sizeof(postgres_schema::kMigrations) / sizeof(postgres_schema::kMigrations[0]);

// An alliance id usable as a partition's name and value: letters, digits, '_' and '-'.
bool IsPartitionableAlliance(const std::string& a) {
  if (a.empty() || a.size() > 40) return false;
  for (char c : a) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

std::string PartitionName(const std::string& table, const std::string& alliance) {
  std::string name = table + "__";
  for (char c : alliance) {
    name += c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return name;
}

// The default partition of every partitioned table, and one per alliance of the registry.
// An alliance whose rows already sit in the default partition (it was not in the registry
// then) keeps them there: creating its partition would fail; OPERATIONS.md says how to move them.
absl::Status EnsurePartitions(PgConn& conn, const std::vector<std::string>& alliances) {
  for (const char* table : postgres_schema::kPartitioned) {
    const std::string fallback = PartitionName(table, "default");
    RETURN_IF_ERROR(conn.Exec(absl::StrCat("CREATE TABLE IF NOT EXISTS \"", fallback,
                                           "\" PARTITION OF ", table, " DEFAULT")));
    for (const std::string& alliance : alliances) {
      if (!IsPartitionableAlliance(alliance)) {
        spdlog::warn("storage: alliance '{}' gets no partition of its own (its name)", alliance);
        continue;
      }
      const std::string name = PartitionName(table, alliance);
      ASSIGN_OR_RETURN(PgResult exists,
                       conn.RunOnce("SELECT to_regclass($1) IS NOT NULL", PgParams().Add(name)));
      if (exists.rows() > 0 && exists.Int(0, 0) != 0) continue;
      ASSIGN_OR_RETURN(PgResult stray, conn.RunOnce(absl::StrCat("SELECT 1 FROM \"", fallback,
                                                                 "\" WHERE alliance=$1 LIMIT 1"),
                                                    PgParams().Add(alliance)));
      if (stray.rows() > 0) {
        spdlog::warn("storage: rows of alliance '{}' are in {}; it keeps them there", alliance,
                     fallback);
        continue;
      }
      // The alliance is letters, digits, '_' and '-' only (checked above): safe as a literal.
      RETURN_IF_ERROR(conn.Exec(absl::StrCat("CREATE TABLE \"", name, "\" PARTITION OF ", table,
                                             " FOR VALUES IN ('", alliance, "')")));
    }
  }
  return absl::OkStatus();
}

// Applies the migrations this database lacks. The advisory lock (held until COMMIT) makes a
// second broker starting at the same moment wait and then find the work done.
absl::Status Migrate(PgConn& conn, const std::string& schema,
                     const std::vector<std::string>& alliances) {
  RETURN_IF_ERROR(conn.Exec("BEGIN"));
  absl::Status s = [&]() -> absl::Status {
    RETURN_IF_ERROR(conn.Exec("SELECT pg_advisory_xact_lock(hashtext('refbroker-migrate'))"));
    RETURN_IF_ERROR(conn.Exec(absl::StrCat("CREATE SCHEMA IF NOT EXISTS \"", schema, "\"")));
    RETURN_IF_ERROR(
        conn.Exec("CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, "
                  "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"));
    ASSIGN_OR_RETURN(PgResult v, conn.Run("SELECT COALESCE(MAX(version), 0) FROM "
                                          "schema_migrations"));
    int version = static_cast<int>(v.Int(0, 0));
    if (version > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat("storage: database schema version ",
                                                        version, " is newer than this broker (",
                                                        kSchemaVersion, ")"));
    }
    for (int next = version; next < kSchemaVersion; ++next) {
      RETURN_IF_ERROR(conn.Exec(postgres_schema::kMigrations[next]));
      RETURN_IF_ERROR(conn.Exec(
          absl::StrCat("INSERT INTO schema_migrations(version) VALUES (", next + 1, ")")));
    }
    return EnsurePartitions(conn, alliances);
  }();
  if (!s.ok()) {
    (void)conn.Exec("ROLLBACK");
    return s;
  }
  return conn.Exec("COMMIT");
}

ReferralRecord ReadReferral(const PgResult& r, int i) {
  ReferralRecord x;
  x.id = r.Bytes(i, 0);
  x.sender = r.Bytes(i, 1);
  x.receiver = r.Bytes(i, 2);
  x.client_request_id = r.Bytes(i, 3);
  x.request_digest = r.Bytes(i, 4);
  x.state = static_cast<int>(r.Int(i, 5));
  x.priority = static_cast<int>(r.Int(i, 6));
  x.submitted_at = r.Int(i, 7);
  x.updated_at = r.Int(i, 8);
  x.body = r.Bytes(i, 9);
  x.direction = static_cast<int>(r.Int(i, 10));
  x.journey_id = r.Bytes(i, 11);
  x.alliance = r.Bytes(i, 12);
  x.decision_due_at = r.IsNull(i, 13) ? 0 : r.Int(i, 13);
  x.version = r.Int(i, 14);
  return x;
}

#define REFERRAL_COLUMNS                                                                     \
  "id, sender, receiver, client_request_id, request_digest, state, priority, submitted_at, " \
  "updated_at, body, direction, journey_id, alliance, decision_due_at, version"

ReferralEventRecord ReadEvent(const PgResult& r, int i) {
  return {r.Bytes(i, 0), r.Bytes(i, 1), r.Bytes(i, 2), static_cast<int>(r.Int(i, 3)),
          r.Int(i, 4),   r.Bytes(i, 5)};
}

absl::StatusOr<std::optional<ReferralEventRecord>> FindEvent(PgConn& c, const std::string& actor,
                                                             const std::string& request_id) {
  ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT referral_id, actor, client_request_id, action, at, "
                                     "body FROM referral_events WHERE actor=$1 AND "
                                     "client_request_id=$2 AND client_request_id<>''",
                                     PgParams().Add(actor).Add(request_id)));
  if (r.rows() == 0) return std::optional<ReferralEventRecord>();
  return std::optional<ReferralEventRecord>(ReadEvent(r, 0));
}

// Queued: the writer's pipeline checks it before the request counts as done.
absl::Status InsertEvent(PgConn& c, const ReferralEventRecord& e, const std::string& alliance) {
  return c.Queue(
      "INSERT INTO referral_events(referral_id, actor, client_request_id, action, at, body, "
      "alliance) VALUES($1,$2,$3,$4::integer,$5::bigint,$6,$7)",
      pg_internal::EventParams(e.referral_id, e, alliance));
}

LeasedMessage ReadLeased(const PgResult& r, int i, const LeaseRequest& req) {
  LeasedMessage m;
  m.sequence = static_cast<uint64_t>(r.Int(i, 0));
  m.queue = req.queue;
  m.priority = static_cast<int>(r.Int(i, 1));
  m.attempt = static_cast<uint32_t>(r.Int(i, 2));
  m.subject_id = r.Bytes(i, 3);
  m.payload = r.Bytes(i, 4);
  m.enqueued_at = r.Int(i, 5);
  m.lease_until = req.lease_until;
  return m;
}

}  // namespace

namespace pg_internal {

absl::Status LockQueue(PgConn& c, const std::string& queue, bool exclusive) {
  // Queued: the statements after it run after it on the server, holding the lock.
  return c.Queue(exclusive ? "SELECT pg_advisory_xact_lock(hashtext('queue:' || $1))"
                           : "SELECT pg_advisory_xact_lock_shared(hashtext('queue:' || $1))",
                 PgParams().Add(queue));
}

absl::Status Enqueue(PgConn& c, const NewMessage& m, Micros now, const std::string& alliance) {
  // Shared with every other enqueue to the queue, exclusive with the creation of a group
  // (EnsureGroup, Replay): a group created meanwhile on another broker sees this message in its
  // backfill or this insert sees the group, never neither.
  RETURN_IF_ERROR(LockQueue(c, m.queue, /*exclusive=*/false));
  // The NOTIFY reaches the other brokers' listeners (PgListener) when this commits. Queued
  // (pipeline mode): nothing here is read back.
  return c.Queue(
      "WITH m AS (INSERT INTO messages(alliance, queue, priority, subject_id, payload, "
      "enqueued_at) VALUES($6,$1,$2::integer,$3,$4,$5::bigint) RETURNING alliance, seq, "
      "queue, priority), g AS (INSERT INTO group_messages(alliance, queue, grp, seq, "
      "priority, state, attempts, visible_at, last_error, state_at) SELECT m.alliance, "
      "cg.queue, cg.grp, m.seq, m.priority, 0, 0, 0, '', $5::bigint FROM m JOIN "
      "consumer_groups cg ON cg.alliance=m.alliance AND cg.queue=m.queue) "
      "SELECT pg_notify('refbroker_' || current_schema(), $1)",
      PgParams()
          .Add(m.queue)
          .Add(m.priority)
          .Add(m.subject_id)
          .Bytes(m.payload)
          .Add(now)
          .Add(alliance));
}

}  // namespace pg_internal

using pg_internal::Enqueue;

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(const PostgresOptions& o) {
  ASSIGN_OR_RETURN(auto writer_conn, PgConn::Connect(o.conninfo, o.schema));
  RETURN_IF_ERROR(Migrate(*writer_conn, o.schema, o.alliances));
  std::unique_ptr<PostgresStore> store(new PostgresStore());
  store->alliance_of_ = o.alliance_of;
  for (size_t i = 0; i < std::max<size_t>(1, o.readers); ++i) {
    ASSIGN_OR_RETURN(auto reader, PgConn::Connect(o.conninfo, o.schema));
    store->readers_.push_back(std::move(reader));
  }
  // The writer's own rows of queue_counts (schema v4): the first shard no other session of
  // this schema holds, for as long as the connection lives (again after a reconnect).
  RETURN_IF_ERROR(writer_conn->SetSessionSql(
      "DO $$ BEGIN FOR s IN 1..4096 LOOP IF pg_try_advisory_lock(hashtext('refbroker-count-shard:' "
      "|| current_schema()), s) THEN PERFORM set_config('refbroker.count_shard', s::text, false); "
      "RETURN; END IF; END LOOP; END $$"));
  // The writer sends what it does not read back without waiting (PgConn's pipeline mode).
  RETURN_IF_ERROR(writer_conn->EnterPipelineMode());
  store->writer_ = std::make_unique<internal::PgWriter>(std::move(writer_conn), o.max_batch);
  if (o.listen) store->listener_ = std::make_unique<internal::PgListener>(o.conninfo, o.schema);
  return store;
}

absl::Status PostgresStore::DropSchema(const std::string& conninfo, const std::string& schema) {
  ASSIGN_OR_RETURN(auto conn, PgConn::Connect(conninfo, schema));
  return conn->Exec(absl::StrCat("DROP SCHEMA IF EXISTS \"", schema, "\" CASCADE"));
}

PostgresStore::~PostgresStore() = default;

absl::Status PostgresStore::Read(const std::function<absl::Status(PgConn&)>& fn) {
  std::unique_ptr<PgConn> conn;
  {
    std::unique_lock<std::mutex> lock(readers_mu_);
    readers_cv_.wait(lock, [&] { return !readers_.empty(); });
    conn = std::move(readers_.back());
    readers_.pop_back();
  }
  absl::Status s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (conn->broken()) s = conn->Reconnect();
    if (!conn->broken()) {
      s = conn->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      if (s.ok()) {
        s = fn(*conn);
        if (!conn->broken()) (void)conn->Exec(s.ok() ? "COMMIT" : "ROLLBACK");
      }
    }
    if (!conn->broken()) break;  // answered (or failed for another reason than the connection)
    if (s.ok() || !absl::IsUnavailable(s)) {
      s = absl::UnavailableError("storage (postgres): connection lost");
    }
  }
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    readers_.push_back(std::move(conn));
  }
  readers_cv_.notify_one();
  return s;
}

absl::Status PostgresStore::WriteTxn(std::function<absl::Status(PgTx&)> fn) {
  std::vector<AuditRow> audit = AuditScope::TakePending();
  absl::Status s = writer_->Write([&](PgTx& tx) -> absl::Status {
    RETURN_IF_ERROR(fn(tx));
    tx.audit.insert(tx.audit.end(), audit.begin(), audit.end());
    return absl::OkStatus();
  });
  if (!s.ok()) AuditScope::Restore(std::move(audit));
  return s;
}

std::string PostgresStore::AllianceOf(const std::string& code) const {
  return alliance_of_ ? alliance_of_(code) : std::string();
}

std::string PostgresStore::QueueAlliance(const std::string& queue) const {
  return AllianceOf(queue.substr(0, queue.find('/')));
}

absl::Status PostgresStore::Health() {
  absl::Status s = writer_->connection_error();
  if (s.ok()) return s;
  // The last batch could not reach the database: ask again (a read reconnects).
  return Read([](PgConn& c) { return c.Run("SELECT 1").status(); });
}

absl::StatusOr<SubmitResult> PostgresStore::SubmitReferral(
    const ReferralRecord& referral, const ReferralEventRecord& event,
    const std::vector<NewMessage>& messages) {
  SubmitResult result;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    // By the unique key, alliance first: one partition's index, however many alliances.
    ASSIGN_OR_RETURN(PgResult found, tx.conn.Run("SELECT " REFERRAL_COLUMNS
                                                 " FROM referrals WHERE alliance=$3 AND sender=$1 "
                                                 "AND client_request_id=$2",
                                                 PgParams()
                                                     .Add(referral.sender)
                                                     .Add(referral.client_request_id)
                                                     .Add(referral.alliance)));
    if (found.rows() > 0) {
      result.referral = ReadReferral(found, 0);
      if (result.referral.request_digest != referral.request_digest) {
        return absl::AlreadyExistsError(
            "referral.client_request_id: already used by this institution for a different "
            "referral");
      }
      result.duplicate = true;
      return absl::OkStatus();
    }
    const ReferralRecord& r = referral;
    PgParams p;
    p.Add(r.id).Add(r.sender).Add(r.receiver).Add(r.client_request_id).Bytes(r.request_digest);
    p.Add(r.state).Add(r.priority).Add(r.submitted_at).Add(r.updated_at).Bytes(r.body);
    p.Add(r.direction).Add(r.journey_id).Add(r.alliance).Add(r.decision_due_at);
    RETURN_IF_ERROR(
        tx.conn.Queue("INSERT INTO referrals(" REFERRAL_COLUMNS
                      ") VALUES($1,$2,$3,$4,$5,$6::integer,$7::integer,$8::bigint,$9::bigint,$10,"
                      "$11::integer,$12,$13,NULLIF($14::bigint,0),1)",
                      p));
    RETURN_IF_ERROR(InsertEvent(tx.conn, event, r.alliance));
    for (const NewMessage& m : messages)
      RETURN_IF_ERROR(Enqueue(tx.conn, m, r.submitted_at, QueueAlliance(m.queue)));
    result.duplicate = false;
    result.referral = referral;
    result.referral.version = 1;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<ReferralRecord> PostgresStore::GetReferral(const std::string& id) {
  ReferralRecord out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT " REFERRAL_COLUMNS " FROM referrals WHERE id=$1",
                                       PgParams().Add(id)));
    if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("referral '", id, "' not found"));
    out = ReadReferral(r, 0);
    return absl::OkStatus();
  }));
  return out;
}

// A referral's change at the version it was read at ($1-$7), completed by WriteChange.
#define REFERRAL_CHANGE_SQL                                                                     \
  "UPDATE referrals SET state=$1::integer, receiver=$2, decision_due_at=NULLIF($3::bigint,0), " \
  "updated_at=$4::bigint, body=$5, version=version+1 WHERE id=$6 AND version=$7::bigint "

// The referral row, its event and its messages: ChangeReferral's writes, and an ack's
// follow-up.
absl::Status PostgresStore::WriteChange(PgConn& conn, const ReferralChange& c,
                                        const std::string* locked_alliance) const {
  PgParams p;
  p.Add(c.state).Add(c.receiver).Add(c.decision_due_at).Add(c.updated_at).Bytes(c.body);
  p.Add(c.referral_id).Add(c.expected_version);
  std::string alliance;
  if (locked_alliance != nullptr) {
    // The row is locked and its version read in this transaction, so the update changes it
    // unless the change was built from another version (then ABORTED, as below); its
    // partition is known (one partition's index, not every partition's).
    alliance = *locked_alliance;
    RETURN_IF_ERROR(conn.QueueOneRow(REFERRAL_CHANGE_SQL "AND alliance=$8", p.Add(alliance),
                                     "referral changed concurrently; retry"));
  } else {
    ASSIGN_OR_RETURN(PgResult up, conn.Run(REFERRAL_CHANGE_SQL "RETURNING alliance", p));
    if (up.rows() == 0) {
      ASSIGN_OR_RETURN(PgResult q, conn.Run("SELECT 1 FROM referrals WHERE id=$1",
                                            PgParams().Add(c.referral_id)));
      return q.rows() > 0
                 ? absl::AbortedError("referral changed concurrently; retry")
                 : absl::NotFoundError(absl::StrCat("referral '", c.referral_id, "' not found"));
    }
    alliance = up.Bytes(0, 0);
  }
  RETURN_IF_ERROR(InsertEvent(conn, c.event, alliance));
  for (const NewMessage& m : c.messages)
    RETURN_IF_ERROR(Enqueue(conn, m, c.updated_at, QueueAlliance(m.queue)));
  return absl::OkStatus();
}

absl::StatusOr<ChangeResult> PostgresStore::ChangeReferral(const ReferralChange& c) {
  ChangeResult result;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    result = ChangeResult();
    if (!c.event.client_request_id.empty()) {
      ASSIGN_OR_RETURN(auto earlier, FindEvent(tx.conn, c.event.actor, c.event.client_request_id));
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
    RETURN_IF_ERROR(WriteChange(tx.conn, c));
    result.event = c.event;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<std::optional<ReferralEventRecord>> PostgresStore::FindReferralEvent(
    const std::string& actor, const std::string& client_request_id) {
  std::optional<ReferralEventRecord> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(out, FindEvent(c, actor, client_request_id));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ReferralEventRecord>> PostgresStore::ListReferralEvents(
    const std::string& referral_id) {
  std::vector<ReferralEventRecord> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT referral_id, actor, client_request_id, action, "
                                       "at, body FROM referral_events WHERE referral_id=$1 "
                                       "ORDER BY seq",
                                       PgParams().Add(referral_id)));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadEvent(r, i));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ReferralRecord>> PostgresStore::ListReferrals(const ReferralQuery& q) {
  std::vector<ReferralRecord> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    PgParams p;
    p.Add(q.party).Add(q.alliance).Add(q.institution).Add(q.direction).Add(q.state);
    p.Add(q.priority).Add(q.submitted_from).Add(q.submitted_to).Add(q.journey_id);
    p.Add(q.after_submitted_at).Add(q.after_id).Add(static_cast<int64_t>(q.limit));
    // Built per filter shape, as in the SQLite store (internal/list_query.h).
    ASSIGN_OR_RETURN(
        PgResult r,
        c.RunOnce(internal::ReferralListSql(q, REFERRAL_COLUMNS, internal::SqlDialect::kPostgres),
                  p));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadReferral(r, i));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ReferralRecord>> PostgresStore::ListDueReferrals(Micros now,
                                                                            size_t limit) {
  std::vector<ReferralRecord> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        PgResult r,
        c.Run("SELECT " REFERRAL_COLUMNS " FROM referrals WHERE decision_due_at IS NOT NULL AND "
              "decision_due_at<=$1::bigint ORDER BY decision_due_at LIMIT $2::bigint",
              PgParams().Add(now).Add(static_cast<int64_t>(limit))));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadReferral(r, i));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
PostgresStore::ListAckedButUndelivered(size_t limit) {
  std::vector<std::pair<std::string, std::string>> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult pending, c.Run("SELECT 1 FROM pending_sweeps WHERE "
                                             "name='acked_but_undelivered'"));
    if (pending.rows() == 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(PgResult r,
                     c.Run("SELECT r.id, r.receiver FROM referrals r WHERE r.decision_due_at IS "
                           "NOT NULL AND r.state=1 AND EXISTS(SELECT 1 FROM messages m JOIN "
                           "group_messages g ON g.seq=m.seq WHERE m.queue=r.receiver || "
                           "'/referrals' AND m.subject_id=r.id AND g.state=2) LIMIT $1::bigint",
                           PgParams().Add(static_cast<int64_t>(limit))));
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.Bytes(i, 0), r.Bytes(i, 1));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PostgresStore::FinishDeliverySweep() {
  return writer_->Write([](PgTx& tx) {
    return tx.conn.Run("DELETE FROM pending_sweeps WHERE name='acked_but_undelivered'").status();
  });
}

absl::StatusOr<std::optional<Micros>> PostgresStore::NextDecisionDue() {
  std::optional<Micros> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT MIN(decision_due_at) FROM referrals"));
    if (r.rows() > 0 && !r.IsNull(0, 0)) out = r.Int(0, 0);
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PostgresStore::EnsureGroup(const std::string& queue, const std::string& group,
                                        Micros now) {
  return WriteTxn([&](PgTx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult known,
                     tx.conn.Run("SELECT 1 FROM consumer_groups WHERE queue=$1 AND grp=$2",
                                 PgParams().Add(queue).Add(group)));
    if (known.rows() > 0) return absl::OkStatus();
    RETURN_IF_ERROR(pg_internal::LockQueue(tx.conn, queue, /*exclusive=*/true));
    ASSIGN_OR_RETURN(
        PgResult ins,
        tx.conn.Run("INSERT INTO consumer_groups(alliance, queue, grp, created_at) "
                    "VALUES($4,$1,$2,$3::bigint) ON CONFLICT DO NOTHING",
                    PgParams().Add(queue).Add(group).Add(now).Add(QueueAlliance(queue))));
    if (ins.Affected() == 0) return absl::OkStatus();
    return tx.conn
        .Run(
            "INSERT INTO group_messages(alliance, queue, grp, seq, priority, state, attempts, "
            "visible_at, last_error, state_at) SELECT alliance, queue, $1, seq, priority, 0, 0, "
            "0, '', $2::bigint FROM messages WHERE queue=$3",
            PgParams().Add(group).Add(now).Add(queue))
        .status();
  });
}

absl::StatusOr<uint64_t> PostgresStore::Replay(const std::string& queue, const std::string& group,
                                               uint64_t from_sequence, Micros now) {
  uint64_t count = 0;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    RETURN_IF_ERROR(pg_internal::LockQueue(tx.conn, queue, /*exclusive=*/true));
    ASSIGN_OR_RETURN(PgResult reset,
                     tx.conn.Run("UPDATE group_messages SET state=0, attempts=0, visible_at=0, "
                                 "last_error='', state_at=$1::bigint WHERE queue=$2 AND grp=$3 "
                                 "AND seq>=$4::bigint",
                                 PgParams().Add(now).Add(queue).Add(group).Add(
                                     static_cast<int64_t>(from_sequence))));
    ASSIGN_OR_RETURN(PgResult fill,
                     tx.conn.Run("INSERT INTO group_messages(alliance, queue, grp, seq, priority, "
                                 "state, attempts, visible_at, last_error, state_at) SELECT "
                                 "alliance, queue, $1, seq, priority, 0, 0, 0, '', $2::bigint "
                                 "FROM messages WHERE queue=$3 AND seq>=$4::bigint ON CONFLICT "
                                 "DO NOTHING",
                                 PgParams().Add(group).Add(now).Add(queue).Add(
                                     static_cast<int64_t>(from_sequence))));
    count = static_cast<uint64_t>(reset.Affected() + fill.Affected());
    return absl::OkStatus();
  }));
  return count;
}

absl::StatusOr<LeaseResult> PostgresStore::Lease(const LeaseRequest& req) {
  LeaseResult result;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) { return LeaseIn(tx, req, result); }));
  return result;
}

absl::StatusOr<AckLeaseResult> PostgresStore::AckThenLease(const std::vector<uint64_t>& sequences,
                                                           const AckFollowUp& follow_up,
                                                           const LeaseRequest& lease) {
  AckLeaseResult out;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    RETURN_IF_ERROR(AckIn(tx, lease.queue, lease.group, sequences, lease.now, follow_up, out.acks));
    return LeaseIn(tx, lease, out.leased);
  }));
  return out;
}

absl::Status PostgresStore::LeaseIn(PgTx& tx, const LeaseRequest& req, LeaseResult& result) {
  result = LeaseResult();  // the request may run again
  // Expired leases that used up their attempts become dead letters (rows another broker is
  // leasing right now are skipped: it decides them).
  RETURN_IF_ERROR(
      tx.conn.Queue("UPDATE group_messages SET state=3, state_at=$1::bigint, last_error=CASE WHEN "
                    "last_error='' THEN 'ack deadline exceeded' ELSE last_error END WHERE "
                    "(queue, grp, seq) IN (SELECT queue, grp, seq FROM group_messages WHERE "
                    "queue=$2 AND grp=$3 AND state=1 AND visible_at<=$1::bigint AND "
                    "attempts>=$4::integer FOR UPDATE SKIP LOCKED)",
                    PgParams().Add(req.now).Add(req.queue).Add(req.group).Add(
                        static_cast<int64_t>(req.max_attempts))));
  ASSIGN_OR_RETURN(
      PgResult r,
      tx.conn.Run("WITH picked AS (SELECT alliance, seq FROM group_messages WHERE queue=$1 "
                  "AND grp=$2 AND state<2 AND visible_at<=$3::bigint ORDER BY priority, seq "
                  "LIMIT $4::bigint FOR UPDATE SKIP LOCKED) "
                  "UPDATE group_messages gm SET state=1, attempts=gm.attempts+1, "
                  "visible_at=$5::bigint, state_at=$3::bigint FROM picked, messages m WHERE "
                  "gm.alliance=picked.alliance AND gm.queue=$1 AND gm.grp=$2 AND "
                  "gm.seq=picked.seq AND m.alliance=gm.alliance AND m.seq=gm.seq "
                  "RETURNING gm.seq, gm.priority, gm.attempts, m.subject_id, m.payload, "
                  "m.enqueued_at",
                  PgParams()
                      .Add(req.queue)
                      .Add(req.group)
                      .Add(req.now)
                      .Add(static_cast<int64_t>(req.max_messages))
                      .Add(req.lease_until)));
  for (int i = 0; i < r.rows(); ++i) result.messages.push_back(ReadLeased(r, i, req));
  std::sort(result.messages.begin(), result.messages.end(),
            [](const LeasedMessage& a, const LeasedMessage& b) {
              return a.priority != b.priority ? a.priority < b.priority : a.sequence < b.sequence;
            });
  if (!req.reader.empty()) {
    for (const LeasedMessage& m : result.messages) {
      tx.audit.push_back(DeliverAuditRow(req, m.subject_id));
    }
  }
  ASSIGN_OR_RETURN(PgResult next,
                   tx.conn.Run("SELECT MIN(visible_at) FROM group_messages WHERE queue=$1 AND "
                               "grp=$2 AND state<2 AND visible_at>$3::bigint",
                               PgParams().Add(req.queue).Add(req.group).Add(req.now)));
  if (next.rows() > 0 && !next.IsNull(0, 0)) result.next_visible_at = next.Int(0, 0);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AckResult>> PostgresStore::AckBatch(
    const std::string& queue, const std::string& group, const std::vector<uint64_t>& sequences,
    Micros now, const AckFollowUp& follow_up) {
  std::vector<AckResult> results;
  RETURN_IF_ERROR(WriteTxn(
      [&](PgTx& tx) { return AckIn(tx, queue, group, sequences, now, follow_up, results); }));
  return results;
}

namespace {
// An ack: marks the group's row acked and tells its previous state and subject (from the row
// locked by the update; old values by self-join).
constexpr char kAckSql[] =
    "WITH old AS (SELECT gm.state, m.subject_id FROM group_messages gm JOIN messages m ON "
    "m.seq=gm.seq WHERE gm.queue=$1 AND gm.grp=$2 AND gm.seq=$3::bigint FOR UPDATE OF gm), up AS "
    "(UPDATE group_messages SET state=2, state_at=$4::bigint WHERE queue=$1 AND grp=$2 AND "
    "seq=$3::bigint AND state<>2 AND EXISTS(SELECT 1 FROM old) RETURNING 1) SELECT old.state, "
    "old.subject_id, (SELECT COUNT(*) FROM up) FROM old";
// Locked: another broker's change to the referral waits for this transaction.
constexpr char kReferralForUpdateSql[] =
    "SELECT " REFERRAL_COLUMNS " FROM referrals WHERE id=$1 FOR UPDATE";
}  // namespace

absl::Status PostgresStore::AckIn(PgTx& tx, const std::string& queue, const std::string& group,
                                  const std::vector<uint64_t>& sequences, Micros now,
                                  const AckFollowUp& follow_up, std::vector<AckResult>& results) {
  results.clear();  // the request may run again
  // Every ack of the batch in one round trip.
  std::vector<PgConn::Statement> acks;
  acks.reserve(sequences.size());
  for (uint64_t sequence : sequences) {
    acks.push_back(
        {kAckSql, PgParams().Add(queue).Add(group).Add(static_cast<int64_t>(sequence)).Add(now)});
  }
  ASSIGN_OR_RETURN(std::vector<PgResult> acked, tx.conn.RunTogether(acks));
  std::vector<size_t> to_follow;  // the first acks of messages about a referral
  for (size_t i = 0; i < sequences.size(); ++i) {
    AckResult& result = results.emplace_back();
    result.sequence = sequences[i];
    if (acked[i].rows() == 0) {
      result.found = false;
      continue;
    }
    result.subject_id = acked[i].Bytes(0, 1);
    result.first_ack = acked[i].Int(0, 2) > 0;
    if (result.first_ack && follow_up && !result.subject_id.empty()) to_follow.push_back(i);
  }
  // Their referrals, locked and read in one round trip, then each one's follow-up (queued). A
  // referral that two acks of the batch are about is read again, after the first one's change:
  // a run of reads holds distinct referrals.
  for (size_t at = 0; at < to_follow.size();) {
    std::set<std::string> subjects;
    std::vector<size_t> run;
    std::vector<PgConn::Statement> reads;
    for (; at < to_follow.size() && subjects.insert(results[to_follow[at]].subject_id).second;
         ++at) {
      run.push_back(to_follow[at]);
      reads.push_back({kReferralForUpdateSql, PgParams().Add(results[to_follow[at]].subject_id)});
    }
    ASSIGN_OR_RETURN(std::vector<PgResult> got, tx.conn.RunTogether(reads));
    for (size_t k = 0; k < run.size(); ++k) {
      if (got[k].rows() == 0) continue;
      AckResult& result = results[run[k]];
      const ReferralRecord referral = ReadReferral(got[k], 0);
      result.follow_up = follow_up(referral);
      if (result.follow_up) {
        RETURN_IF_ERROR(WriteChange(tx.conn, *result.follow_up, &referral.alliance));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::Nack(const std::string& queue, const std::string& group,
                                 uint64_t sequence, const std::string& reason,
                                 uint32_t max_attempts, Micros retry_at, Micros now) {
  return WriteTxn([&](PgTx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(
        PgResult q,
        tx.conn.Run("SELECT state, attempts FROM group_messages WHERE queue=$1 AND "
                    "grp=$2 AND seq=$3::bigint FOR UPDATE",
                    PgParams().Add(queue).Add(group).Add(static_cast<int64_t>(sequence))));
    if (q.rows() == 0) {
      return absl::NotFoundError(
          absl::StrCat("sequence ", sequence, " is not in group '", group, "' of ", queue));
    }
    int64_t state = q.Int(0, 0);
    if (state == kAcked || state == kDead) return absl::OkStatus();
    bool dead = q.Int(0, 1) >= static_cast<int64_t>(max_attempts);
    return tx.conn
        .Run(
            "UPDATE group_messages SET state=$1::integer, visible_at=$2::bigint, last_error=$3, "
            "state_at=$4::bigint WHERE queue=$5 AND grp=$6 AND seq=$7::bigint",
            PgParams()
                .Add(dead ? kDead : kReady)
                .Add(retry_at)
                .Add(reason.empty() ? std::string("nacked") : reason)
                .Add(now)
                .Add(queue)
                .Add(group)
                .Add(static_cast<int64_t>(sequence)))
        .status();
  });
}

absl::Status PostgresStore::Release(const std::string& queue, const std::string& group,
                                    const std::vector<uint64_t>& sequences, Micros now) {
  if (sequences.empty()) return absl::OkStatus();
  return WriteTxn([&](PgTx& tx) -> absl::Status {
    for (uint64_t seq : sequences) {
      RETURN_IF_ERROR(
          tx.conn.Queue("UPDATE group_messages SET state=0, visible_at=$1::bigint, "
                        "state_at=$1::bigint WHERE queue=$2 AND grp=$3 AND "
                        "seq=$4::bigint AND state=1",
                        PgParams().Add(now).Add(queue).Add(group).Add(static_cast<int64_t>(seq))));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<QueueStats>> PostgresStore::ListQueueStats() {
  // The counts schema v4's triggers keep (summed over the brokers' shards), and per queue or
  // group its oldest waiting message found through an index: a few searches each, however many
  // messages are retained. A lease past its deadline counts as in flight until it is delivered
  // again.
  std::map<std::string, QueueStats> by_queue;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult counts, c.Run(pg_internal::kQueueCountsSql));
    std::map<std::pair<std::string, std::string>, GroupStats> groups;
    for (int i = 0; i < counts.rows(); ++i) {
      const auto n = static_cast<uint64_t>(counts.Int(i, 3));
      const int64_t state = counts.Int(i, 2);
      if (state < 0) {
        QueueStats& q = by_queue[counts.Bytes(i, 0)];
        q.queue = counts.Bytes(i, 0);
        q.retained = n;
        q.unconsumed = n;  // corrected below when the queue has groups
        continue;
      }
      GroupStats& g = groups[{counts.Bytes(i, 0), counts.Bytes(i, 1)}];
      if (state == 0) g.ready = n;
      if (state == 1) g.in_flight = n;
      if (state == 3) g.dead = n;
    }
    ASSIGN_OR_RETURN(PgResult names, c.Run("SELECT queue, grp FROM consumer_groups"));
    for (int i = 0; i < names.rows(); ++i) groups[{names.Bytes(i, 0), names.Bytes(i, 1)}];
    // The earliest of a queue's or group's rows (one per partition it spans).
    auto keep_earliest = [](Micros& oldest, Micros at) {
      if (oldest == 0 || at < oldest) oldest = at;
    };
    ASSIGN_OR_RETURN(PgResult first, c.Run(pg_internal::kQueueOldestSql));
    for (int i = 0; i < first.rows(); ++i) {
      auto q = by_queue.find(first.Bytes(i, 0));
      if (q != by_queue.end()) keep_earliest(q->second.oldest_unconsumed_at, first.Int(i, 1));
    }
    ASSIGN_OR_RETURN(PgResult waiting, c.Run(pg_internal::kGroupOldestSql));
    for (int i = 0; i < waiting.rows(); ++i) {
      auto g = groups.find({waiting.Bytes(i, 0), waiting.Bytes(i, 1)});
      if (g != groups.end()) keep_earliest(g->second.oldest_enqueued_at, waiting.Int(i, 2));
    }
    for (auto& [key, g] : groups) {
      QueueStats& q = by_queue[key.first];
      q.queue = key.first;
      q.unconsumed = 0;
      q.oldest_unconsumed_at = 0;
      g.group = key.second;
      q.groups.push_back(std::move(g));  // in the map's order: by group
    }
    return absl::OkStatus();
  }));
  std::vector<QueueStats> out;
  out.reserve(by_queue.size());
  for (auto& [name, q] : by_queue) out.push_back(std::move(q));
  return out;
}

absl::StatusOr<DeadlineBreaches> PostgresStore::CountDeadlineBreaches(
    const DeadlineBreachFilter& filter) {
  // As SQLite's: through the partial indexes of the open work (referrals_escalated, v3;
  // consults_open, v2), a consult escalated when its history has a CONSULT_ESCALATE (7) event.
  DeadlineBreaches out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    PgParams p;
    p.Add(filter.alliance).Add(filter.owner);
    ASSIGN_OR_RETURN(
        PgResult referrals,
        c.RunOnce("SELECT receiver, COUNT(*) FROM referrals WHERE state=8 AND "
                  "($1::text='' OR alliance=$1::text) AND ($2::text='' OR receiver=$2::text) "
                  "GROUP BY receiver",
                  p));
    for (int i = 0; i < referrals.rows(); ++i) {
      out.referrals[referrals.Bytes(i, 0)] = static_cast<uint64_t>(referrals.Int(i, 1));
    }
    ASSIGN_OR_RETURN(
        PgResult consults,
        c.RunOnce("SELECT target, COUNT(*) FROM consults WHERE state IN (1, 2, 4) AND "
                  "($1::text='' OR alliance=$1::text) AND ($2::text='' OR target=$2::text) AND "
                  "EXISTS(SELECT 1 FROM consult_events e WHERE e.alliance=consults.alliance AND "
                  "e.consult_id=consults.id AND e.action=7) GROUP BY target",
                  p));
    for (int i = 0; i < consults.rows(); ++i) {
      out.consults[consults.Bytes(i, 0)] = static_cast<uint64_t>(consults.Int(i, 1));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<DeadLetterRecord>> PostgresStore::ListDeadLetters(
    const DeadLetterFilter& f) {
  std::vector<DeadLetterRecord> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        PgResult r, c.Run("SELECT gm.queue, gm.grp, gm.seq, m.subject_id, gm.attempts, "
                          "gm.last_error, m.enqueued_at, gm.state_at FROM group_messages gm "
                          "JOIN messages m ON m.seq=gm.seq WHERE gm.state=3 AND "
                          "($1::text='' OR gm.queue=$1) AND ($2::text='' OR gm.grp=$2) "
                          "ORDER BY gm.state_at, gm.seq LIMIT $3::bigint",
                          PgParams().Add(f.queue).Add(f.group).Add(static_cast<int64_t>(f.limit))));
    for (int i = 0; i < r.rows(); ++i) {
      DeadLetterRecord d;
      d.queue = r.Bytes(i, 0);
      d.group = r.Bytes(i, 1);
      d.sequence = static_cast<uint64_t>(r.Int(i, 2));
      d.subject_id = r.Bytes(i, 3);
      d.attempts = static_cast<uint32_t>(r.Int(i, 4));
      d.last_error = r.Bytes(i, 5);
      d.enqueued_at = r.Int(i, 6);
      d.dead_at = r.Int(i, 7);
      out.push_back(std::move(d));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<uint64_t> PostgresStore::RequeueDeadLetters(const std::string& queue,
                                                           const std::string& group,
                                                           uint64_t sequence, Micros now) {
  uint64_t count = 0;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(
        PgResult r,
        tx.conn.Run("UPDATE group_messages SET state=0, attempts=0, visible_at=0, "
                    "last_error='', state_at=$1::bigint WHERE queue=$2 AND grp=$3 "
                    "AND state=3 AND ($4::bigint=0 OR seq=$4)",
                    PgParams().Add(now).Add(queue).Add(group).Add(static_cast<int64_t>(sequence))));
    count = static_cast<uint64_t>(r.Affected());
    if (count == 0 && sequence != 0) {
      return absl::NotFoundError(absl::StrCat(
          "sequence ", sequence, " is not a dead letter of group '", group, "' of ", queue));
    }
    return absl::OkStatus();
  }));
  return count;
}

absl::StatusOr<uint64_t> PostgresStore::Prune(Micros cutoff) {
  // As in the SQLite store: retention counts from the last group's ack, and the writer is
  // never held by the search. The candidates are those below the first sequence enqueued at or
  // after the cutoff (found through the sequence index), picked on a reader, and each batch is
  // deleted in its own transaction after checking again that every group acked it before the
  // cutoff. (One statement in the writer scanned the messages table for enqueued_at, holding
  // every write meanwhile.)
  constexpr int64_t kBatch = 500;
  constexpr uint64_t kMostPerCall = 20000;  // the housekeeping tick calls again
  int64_t boundary = 0;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT COALESCE((SELECT seq FROM messages WHERE "
                                       "enqueued_at>=$1::bigint ORDER BY seq LIMIT 1), (SELECT "
                                       "COALESCE(MAX(seq), 0) + 1 FROM messages))",
                                       PgParams().Add(cutoff)));
    boundary = r.rows() > 0 ? r.Int(0, 0) : 0;
    return absl::OkStatus();
  }));
  uint64_t count = 0;
  int64_t after = 0;
  while (count < kMostPerCall) {
    std::vector<std::string> picked;
    RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
      ASSIGN_OR_RETURN(
          PgResult r,
          c.Run("SELECT m.seq FROM messages m WHERE m.seq>$1::bigint AND m.seq<$2::bigint AND "
                "EXISTS(SELECT 1 FROM consumer_groups cg WHERE cg.queue=m.queue) AND NOT "
                "EXISTS(SELECT 1 FROM group_messages gm WHERE gm.seq=m.seq AND (gm.state<>2 "
                "OR gm.state_at>=$4::bigint)) ORDER BY m.seq LIMIT $3::bigint",
                PgParams().Add(after).Add(boundary).Add(kBatch).Add(cutoff)));
      for (int i = 0; i < r.rows(); ++i) {
        picked.push_back(std::to_string(r.Int(i, 0)));
        after = r.Int(i, 0);
      }
      return absl::OkStatus();
    }));
    if (picked.empty()) break;
    std::string seqs = absl::StrCat("{", absl::StrJoin(picked, ","), "}");
    uint64_t deleted = 0;
    RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
      // Both tables in one statement (one snapshot).
      ASSIGN_OR_RETURN(
          PgResult r,
          tx.conn.Run("WITH p AS (SELECT m.seq FROM messages m WHERE m.seq = ANY($1::bigint[]) "
                      "AND NOT EXISTS(SELECT 1 FROM group_messages gm WHERE gm.seq=m.seq AND "
                      "(gm.state<>2 OR gm.state_at>=$2::bigint))), g AS (DELETE FROM "
                      "group_messages WHERE seq IN (SELECT seq FROM p)) DELETE FROM messages "
                      "WHERE seq IN (SELECT seq FROM p)",
                      PgParams().Add(seqs).Add(cutoff)));
      deleted = static_cast<uint64_t>(r.Affected());
      return absl::OkStatus();
    }));
    count += deleted;
  }
  return count;
}

}  // namespace refbroker::storage

// PostgresStore: result records and re-test reasons, consults, and the audit trail.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/storage/audit_chain.h"
#include "broker/storage/internal/list_query.h"
#include "broker/storage/postgres_store.h"
#include "broker/storage/postgres_store_internal.h"

namespace refbroker::storage {

using internal::PgConn;
using internal::PgParams;
using internal::PgResult;
using internal::PgTx;
using pg_internal::Enqueue;

namespace {

// --- results ----------------------------------------------------------------------------

#define RESULT_COLUMNS                                                               \
  "id, publisher, client_request_id, request_digest, patient_key, item_code, kind, " \
  "performed_at, received_at, repeat_without_reason, body"

ResultRow ReadResult(const PgResult& r, int i) {
  ResultRow x;
  x.id = r.Bytes(i, 0);
  x.publisher = r.Bytes(i, 1);
  x.client_request_id = r.Bytes(i, 2);
  x.request_digest = r.Bytes(i, 3);
  x.patient_key = r.Bytes(i, 4);
  x.item_code = r.Bytes(i, 5);
  x.kind = static_cast<int>(r.Int(i, 6));
  x.performed_at = r.Int(i, 7);
  x.received_at = r.Int(i, 8);
  x.repeat_without_reason = r.Int(i, 9) != 0;
  x.body = r.Bytes(i, 10);
  return x;
}

#define RETEST_COLUMNS                                                                \
  "id, institution, client_request_id, patient_key, item_code, reason, recorded_at, " \
  "used_by_result_id, body"

RetestRow ReadRetest(const PgResult& r, int i) {
  RetestRow x;
  x.id = r.Bytes(i, 0);
  x.institution = r.Bytes(i, 1);
  x.client_request_id = r.Bytes(i, 2);
  x.patient_key = r.Bytes(i, 3);
  x.item_code = r.Bytes(i, 4);
  x.reason = static_cast<int>(r.Int(i, 5));
  x.recorded_at = r.Int(i, 6);
  x.used_by_result_id = r.Bytes(i, 7);
  x.body = r.Bytes(i, 8);
  return x;
}

}  // namespace

namespace pg_internal {
const char kResultByRequestSql[] = "SELECT " RESULT_COLUMNS
                                   " FROM results WHERE alliance=$3 AND publisher=$1 AND "
                                   "client_request_id=$2";
const char kRetestByRequestSql[] = "SELECT " RETEST_COLUMNS
                                   " FROM retests WHERE alliance=$3 AND institution=$1 AND "
                                   "client_request_id=$2";
const char kUnusedRetestSql[] = "SELECT " RETEST_COLUMNS
                                " FROM retests WHERE alliance=$4 AND institution=$1 AND "
                                "patient_key=$2 AND item_code=$3 AND used_by_result_id='' ORDER "
                                "BY recorded_at LIMIT 1";
}  // namespace pg_internal

namespace {

constexpr char kPriorsSql[] = "SELECT " RESULT_COLUMNS
                              " FROM results WHERE patient_key=$1 AND item_code=$2 ORDER BY "
                              "performed_at DESC LIMIT $3::bigint";

// What a publish compares the new result with (Store::PublishResult's PriorScan).
constexpr char kEarlierSql[] = "SELECT " RESULT_COLUMNS
                               " FROM results WHERE patient_key=$1 AND item_code=$2 AND "
                               "performed_at<$3::bigint ORDER BY performed_at DESC LIMIT 20";

// `alliance`: the institution's, whose partition its re-test reasons are in.
absl::StatusOr<std::optional<RetestRow>> FindUnused(PgConn& c, const std::string& institution,
                                                    const std::string& patient_key,
                                                    const std::string& item_code,
                                                    const std::string& alliance) {
  ASSIGN_OR_RETURN(
      PgResult r, c.Run(pg_internal::kUnusedRetestSql,
                        PgParams().Add(institution).Add(patient_key).Add(item_code).Add(alliance)));
  if (r.rows() == 0) return std::optional<RetestRow>();
  return std::optional<RetestRow>(ReadRetest(r, 0));
}

// --- consults ---------------------------------------------------------------------------

#define CONSULT_COLUMNS                                                                  \
  "id, requester, target, client_request_id, request_digest, state, priority, service, " \
  "alliance, requested_at, updated_at, due_at, version, body"

ConsultRecord ReadConsult(const PgResult& r, int i) {
  ConsultRecord x;
  x.id = r.Bytes(i, 0);
  x.requester = r.Bytes(i, 1);
  x.target = r.Bytes(i, 2);
  x.client_request_id = r.Bytes(i, 3);
  x.request_digest = r.Bytes(i, 4);
  x.state = static_cast<int>(r.Int(i, 5));
  x.priority = static_cast<int>(r.Int(i, 6));
  x.service = static_cast<int>(r.Int(i, 7));
  x.alliance = r.Bytes(i, 8);
  x.requested_at = r.Int(i, 9);
  x.updated_at = r.Int(i, 10);
  x.due_at = r.IsNull(i, 11) ? 0 : r.Int(i, 11);
  x.version = r.Int(i, 12);
  x.body = r.Bytes(i, 13);
  return x;
}

#define CONSULT_EVENT_COLUMNS "consult_id, actor, client_request_id, action, at, body"

ConsultEventRecord ReadConsultEvent(const PgResult& r, int i) {
  return {r.Bytes(i, 0), r.Bytes(i, 1), r.Bytes(i, 2), static_cast<int>(r.Int(i, 3)),
          r.Int(i, 4),   r.Bytes(i, 5)};
}

#define THREAD_COLUMNS "id, consult_id, seq, author, client_request_id, at, body"

ConsultMessageRow ReadThreadMessage(const PgResult& r, int i) {
  ConsultMessageRow m;
  m.id = r.Bytes(i, 0);
  m.consult_id = r.Bytes(i, 1);
  m.seq = static_cast<uint64_t>(r.Int(i, 2));
  m.author = r.Bytes(i, 3);
  m.client_request_id = r.Bytes(i, 4);
  m.at = r.Int(i, 5);
  m.body = r.Bytes(i, 6);
  return m;
}

absl::StatusOr<std::optional<ConsultEventRecord>> FindConsultEventIn(
    PgConn& c, const std::string& actor, const std::string& request_id) {
  ASSIGN_OR_RETURN(PgResult r,
                   c.Run("SELECT " CONSULT_EVENT_COLUMNS " FROM consult_events WHERE actor=$1 AND "
                         "client_request_id=$2 AND client_request_id<>''",
                         PgParams().Add(actor).Add(request_id)));
  if (r.rows() == 0) return std::optional<ConsultEventRecord>();
  return std::optional<ConsultEventRecord>(ReadConsultEvent(r, 0));
}

// Queued, as a referral's event.
absl::Status InsertConsultEvent(PgConn& c, const ConsultEventRecord& e,
                                const std::string& alliance) {
  return c.Queue(
      "INSERT INTO consult_events(consult_id, actor, client_request_id, action, at, body, "
      "alliance) VALUES($1,$2,$3,$4::integer,$5::bigint,$6,$7)",
      pg_internal::EventParams(e.consult_id, e, alliance));
}

// --- audit ------------------------------------------------------------------------------

#define AUDIT_COLUMNS \
  "seq, at, actor, alliance, action, subject, patient_key, peer, outcome, prev_hash, hash"

AuditRow ReadAudit(const PgResult& r, int i) {
  AuditRow x;
  x.seq = static_cast<uint64_t>(r.Int(i, 0));
  x.at = r.Int(i, 1);
  x.actor = r.Bytes(i, 2);
  x.alliance = r.Bytes(i, 3);
  x.action = r.Bytes(i, 4);
  x.subject = r.Bytes(i, 5);
  x.patient_key = r.Bytes(i, 6);
  x.peer = r.Bytes(i, 7);
  x.outcome = r.Bytes(i, 8);
  x.prev_hash = r.Bytes(i, 9);
  x.hash = r.Bytes(i, 10);
  return x;
}

}  // namespace

absl::StatusOr<PublishOutcome> PostgresStore::PublishResult(const ResultRow& row,
                                                            const PublishDecider& decide) {
  PublishOutcome out;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    out = PublishOutcome();
    // One round trip: the duplicate check by the unique key, alliance first (the publisher's:
    // its row's partition, as a referral's in PostgresStore::SubmitReferral); the lock that
    // makes publishes of a patient's item one at a time across brokers, so that the look at the
    // earlier results and the insert below cannot interleave with another's; and that look
    // (wasted on a duplicate, which is rare).
    ASSIGN_OR_RETURN(
        std::vector<PgResult> read,
        tx.conn.RunTogether(
            {{pg_internal::kResultByRequestSql, PgParams()
                                                    .Add(row.publisher)
                                                    .Add(row.client_request_id)
                                                    .Add(AllianceOf(row.publisher))},
             {"SELECT pg_advisory_xact_lock(hashtext('result:' || $1 || ':' || $2))",
              PgParams().Add(row.patient_key).Add(row.item_code), /*read=*/false},
             {kEarlierSql,
              PgParams().Add(row.patient_key).Add(row.item_code).Add(row.performed_at)}}));
    const PgResult& found = read[0];
    if (found.rows() > 0) {
      out.row = ReadResult(found, 0);
      if (out.row.request_digest != row.request_digest) {
        return absl::AlreadyExistsError(
            "result.client_request_id: already used by this institution for a different result");
      }
      out.duplicate = true;
      return absl::OkStatus();
    }
    const PgResult& p = read[1];
    // The rows come with the entries here (one round trip); the filter still decides which
    // the decision sees.
    PriorScan priors = [&](const PriorFilter& filter, const PriorVisitor& visit) -> absl::Status {
      for (int i = 0; i < p.rows(); ++i) {
        ResultRow prior = ReadResult(p, i);
        if (filter(prior.publisher, prior.performed_at) && !visit(prior)) break;
      }
      return absl::OkStatus();
    };
    UnusedRetestLookup lookup = [&]() -> absl::StatusOr<std::optional<RetestRow>> {
      return FindUnused(tx.conn, row.publisher, row.patient_key, row.item_code,
                        AllianceOf(row.publisher));
    };
    out.row = row;
    ASSIGN_OR_RETURN(PublishDecision decision, decide(priors, lookup, out.row));
    if (!decision.use_retest_id.empty()) {
      ASSIGN_OR_RETURN(PgResult use,
                       tx.conn.Run("UPDATE retests SET used_by_result_id=$1 WHERE "
                                   "id=$2 AND used_by_result_id=''",
                                   PgParams().Add(out.row.id).Add(decision.use_retest_id)));
      if (use.Affected() == 0) return absl::AbortedError("re-test reason used meanwhile; retry");
    }
    const ResultRow& r = out.row;
    PgParams ins;
    ins.Add(r.id).Add(r.publisher).Add(r.client_request_id).Bytes(r.request_digest);
    ins.Add(r.patient_key).Add(r.item_code).Add(r.kind).Add(r.performed_at).Add(r.received_at);
    ins.Add(r.repeat_without_reason ? 1 : 0).Bytes(r.body).Add(AllianceOf(r.publisher));
    RETURN_IF_ERROR(tx.conn.Queue("INSERT INTO results(" RESULT_COLUMNS
                                  ", alliance) VALUES($1,$2,$3,$4,$5,$6,$7::integer,$8::bigint,"
                                  "$9::bigint,$10::integer,$11,$12)",
                                  ins));
    for (const NewMessage& m : decision.messages) {
      RETURN_IF_ERROR(Enqueue(tx.conn, m, row.received_at, QueueAlliance(m.queue)));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ResultRow> PostgresStore::GetResult(const std::string& id) {
  ResultRow out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT " RESULT_COLUMNS " FROM results WHERE id=$1",
                                       PgParams().Add(id)));
    if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("result '", id, "' not found"));
    out = ReadResult(r, 0);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ResultRow>> PostgresStore::ListResults(
    const std::string& patient_key, const std::vector<std::string>& item_codes, size_t limit) {
  std::vector<ResultRow> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    if (item_codes.empty()) {
      ASSIGN_OR_RETURN(PgResult r,
                       c.Run("SELECT " RESULT_COLUMNS " FROM results WHERE patient_key=$1 ORDER BY "
                             "performed_at DESC LIMIT $2::bigint",
                             PgParams().Add(patient_key).Add(static_cast<int64_t>(limit))));
      for (int i = 0; i < r.rows(); ++i) out.push_back(ReadResult(r, i));
      return absl::OkStatus();
    }
    for (const std::string& item : item_codes) {
      ASSIGN_OR_RETURN(
          PgResult r,
          c.Run(kPriorsSql,
                PgParams().Add(patient_key).Add(item).Add(static_cast<int64_t>(limit))));
      for (int i = 0; i < r.rows(); ++i) out.push_back(ReadResult(r, i));
    }
    std::sort(out.begin(), out.end(), [](const ResultRow& a, const ResultRow& b) {
      return a.performed_at > b.performed_at;
    });
    if (out.size() > limit) out.resize(limit);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<RetestOutcome> PostgresStore::RecordRetest(const RetestRow& row) {
  RetestOutcome out;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    out = RetestOutcome();
    // By the unique key, alliance first, as a result's.
    ASSIGN_OR_RETURN(PgResult found, tx.conn.Run(pg_internal::kRetestByRequestSql,
                                                 PgParams()
                                                     .Add(row.institution)
                                                     .Add(row.client_request_id)
                                                     .Add(AllianceOf(row.institution))));
    if (found.rows() > 0) {
      out.row = ReadRetest(found, 0);
      out.duplicate = true;
      return absl::OkStatus();
    }
    PgParams p;
    p.Add(row.id).Add(row.institution).Add(row.client_request_id).Add(row.patient_key);
    p.Add(row.item_code).Add(row.reason).Add(row.recorded_at).Add(row.used_by_result_id);
    p.Bytes(row.body).Add(AllianceOf(row.institution));
    RETURN_IF_ERROR(
        tx.conn.Queue("INSERT INTO retests(" RETEST_COLUMNS
                      ", alliance) VALUES($1,$2,$3,$4,$5,$6::integer,$7::bigint,$8,$9,$10)",
                      p));
    out.row = row;
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::optional<RetestRow>> PostgresStore::FindUnusedRetest(
    const std::string& institution, const std::string& patient_key, const std::string& item_code) {
  std::optional<RetestRow> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(out,
                     FindUnused(c, institution, patient_key, item_code, AllianceOf(institution)));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<RetestCountRow>> PostgresStore::CountRetests(Micros from, Micros to) {
  std::vector<RetestCountRow> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r,
                     c.Run("SELECT who, reason, n FROM (SELECT institution AS who, reason, "
                           "COUNT(*) AS n FROM retests WHERE recorded_at>=$1::bigint AND "
                           "($2::bigint=0 OR recorded_at<$2) GROUP BY institution, reason UNION "
                           "ALL SELECT publisher, 0, COUNT(*) FROM results WHERE "
                           "repeat_without_reason=1 AND received_at>=$1::bigint AND "
                           "($2::bigint=0 OR received_at<$2) GROUP BY publisher) counts ORDER BY "
                           "who COLLATE \"C\", reason",
                           PgParams().Add(from).Add(to)));
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back(
          {r.Bytes(i, 0), static_cast<int>(r.Int(i, 1)), static_cast<uint64_t>(r.Int(i, 2))});
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ConsultSubmitResult> PostgresStore::SubmitConsult(
    const ConsultRecord& consult, const ConsultEventRecord& event,
    const std::vector<NewMessage>& messages) {
  ConsultSubmitResult result;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    result = ConsultSubmitResult();
    // By the unique key, alliance first, as a referral's (PostgresStore::SubmitReferral).
    ASSIGN_OR_RETURN(PgResult found,
                     tx.conn.Run("SELECT " CONSULT_COLUMNS " FROM consults WHERE alliance=$3 AND "
                                 "requester=$1 AND client_request_id=$2",
                                 PgParams()
                                     .Add(consult.requester)
                                     .Add(consult.client_request_id)
                                     .Add(consult.alliance)));
    if (found.rows() > 0) {
      result.consult = ReadConsult(found, 0);
      if (result.consult.request_digest != consult.request_digest) {
        return absl::AlreadyExistsError(
            "consult.client_request_id: already used by this institution for a different "
            "consult");
      }
      result.duplicate = true;
      return absl::OkStatus();
    }
    const ConsultRecord& r = consult;
    PgParams p;
    p.Add(r.id).Add(r.requester).Add(r.target).Add(r.client_request_id).Bytes(r.request_digest);
    p.Add(r.state).Add(r.priority).Add(r.service).Add(r.alliance).Add(r.requested_at);
    p.Add(r.updated_at).Add(r.due_at).Bytes(r.body);
    RETURN_IF_ERROR(tx.conn.Queue("INSERT INTO consults(" CONSULT_COLUMNS
                                  ") VALUES($1,$2,$3,$4,$5,$6::integer,$7::integer,$8::integer,$9,"
                                  "$10::bigint,$11::bigint,NULLIF($12::bigint,0),1,$13)",
                                  p));
    RETURN_IF_ERROR(InsertConsultEvent(tx.conn, event, r.alliance));
    for (const NewMessage& m : messages)
      RETURN_IF_ERROR(Enqueue(tx.conn, m, r.requested_at, QueueAlliance(m.queue)));
    result.consult = consult;
    result.consult.version = 1;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<ConsultRecord> PostgresStore::GetConsult(const std::string& id) {
  ConsultRecord out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT " CONSULT_COLUMNS " FROM consults WHERE id=$1",
                                       PgParams().Add(id)));
    if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("consult '", id, "' not found"));
    out = ReadConsult(r, 0);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ConsultChangeResult> PostgresStore::ChangeConsult(const ConsultChange& c) {
  ConsultChangeResult result;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    result = ConsultChangeResult();
    if (!c.event.client_request_id.empty()) {
      ASSIGN_OR_RETURN(auto earlier,
                       FindConsultEventIn(tx.conn, c.event.actor, c.event.client_request_id));
      if (earlier) {
        if (earlier->consult_id != c.consult_id || earlier->action != c.event.action) {
          return absl::AlreadyExistsError(
              "client_request_id: already used by this institution for another request");
        }
        result.duplicate = true;
        result.event = std::move(*earlier);
        return absl::OkStatus();
      }
    }
    ASSIGN_OR_RETURN(PgResult up,
                     tx.conn.Run("UPDATE consults SET state=$1::integer, "
                                 "due_at=NULLIF($2::bigint,0), updated_at=$3::bigint, body=$4, "
                                 "version=version+1 WHERE id=$5 AND version=$6::bigint "
                                 "RETURNING alliance",
                                 PgParams()
                                     .Add(c.state)
                                     .Add(c.due_at)
                                     .Add(c.updated_at)
                                     .Bytes(c.body)
                                     .Add(c.consult_id)
                                     .Add(c.expected_version)));
    if (up.rows() == 0) {
      ASSIGN_OR_RETURN(PgResult q, tx.conn.Run("SELECT 1 FROM consults WHERE id=$1",
                                               PgParams().Add(c.consult_id)));
      return q.rows() > 0
                 ? absl::AbortedError("consult changed concurrently; retry")
                 : absl::NotFoundError(absl::StrCat("consult '", c.consult_id, "' not found"));
    }
    const std::string alliance = up.Bytes(0, 0);
    RETURN_IF_ERROR(InsertConsultEvent(tx.conn, c.event, alliance));
    if (c.report) {
      const ConsultReportRow& r = *c.report;
      // Reports are never replaced: an existing id is refused before the insert (the unique
      // key would refuse it too, but then as a race that the writer retries).
      ASSIGN_OR_RETURN(PgResult exists, tx.conn.Run("SELECT 1 FROM consult_reports WHERE id=$1",
                                                    PgParams().Add(r.id)));
      if (exists.rows() > 0) {
        return absl::AlreadyExistsError(
            absl::StrCat("report '", r.id, "' exists and is immutable"));
      }
      RETURN_IF_ERROR(
          tx.conn.Queue("INSERT INTO consult_reports(id, consult_id, issued_at, sha256, "
                        "addendum_to, body, alliance) VALUES($1,$2,$3::bigint,$4,$5,$6,$7)",
                        PgParams()
                            .Add(r.id)
                            .Add(r.consult_id)
                            .Add(r.issued_at)
                            .Add(r.sha256)
                            .Add(r.addendum_to)
                            .Bytes(r.body)
                            .Add(alliance)));
    }
    for (const NewMessage& m : c.messages)
      RETURN_IF_ERROR(Enqueue(tx.conn, m, c.updated_at, QueueAlliance(m.queue)));
    result.event = c.event;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<std::optional<ConsultEventRecord>> PostgresStore::FindConsultEvent(
    const std::string& actor, const std::string& client_request_id) {
  std::optional<ConsultEventRecord> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(out, FindConsultEventIn(c, actor, client_request_id));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultEventRecord>> PostgresStore::ListConsultEvents(
    const std::string& consult_id) {
  std::vector<ConsultEventRecord> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT " CONSULT_EVENT_COLUMNS
                                       " FROM consult_events WHERE consult_id=$1 ORDER BY seq",
                                       PgParams().Add(consult_id)));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadConsultEvent(r, i));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultReportRow>> PostgresStore::ListConsultReports(
    const std::string& consult_id) {
  std::vector<ConsultReportRow> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT id, consult_id, sha256, addendum_to, issued_at, "
                                       "body FROM consult_reports WHERE consult_id=$1 ORDER BY "
                                       "issued_at, ord",
                                       PgParams().Add(consult_id)));
    for (int i = 0; i < r.rows(); ++i) {
      out.push_back(
          {r.Bytes(i, 0), r.Bytes(i, 1), r.Bytes(i, 2), r.Bytes(i, 3), r.Int(i, 4), r.Bytes(i, 5)});
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ThreadMessageOutcome> PostgresStore::AppendConsultMessage(
    const ConsultMessageRow& row, const ThreadMessageAnnouncer& announce) {
  ThreadMessageOutcome out;
  RETURN_IF_ERROR(WriteTxn([&](PgTx& tx) -> absl::Status {
    out = ThreadMessageOutcome();
    ASSIGN_OR_RETURN(
        PgResult found,
        tx.conn.Run("SELECT " THREAD_COLUMNS " FROM consult_messages WHERE author=$1 AND "
                    "client_request_id=$2",
                    PgParams().Add(row.author).Add(row.client_request_id)));
    if (found.rows() > 0) {
      out.row = ReadThreadMessage(found, 0);
      if (out.row.consult_id != row.consult_id) {
        return absl::AlreadyExistsError(
            "message.client_request_id: already used by this institution for another message");
      }
      out.duplicate = true;
      return absl::OkStatus();
    }
    // Two brokers appending to one thread at once: the second's insert hits UNIQUE(consult_id,
    // seq) and the writer runs it again with the next seq.
    ASSIGN_OR_RETURN(PgResult next, tx.conn.Run("SELECT COALESCE(MAX(seq), 0) + 1 FROM "
                                                "consult_messages WHERE consult_id=$1",
                                                PgParams().Add(row.consult_id)));
    out.row = row;
    out.row.seq = static_cast<uint64_t>(next.Int(0, 0));
    // The thread lives in its consult's partition.
    ASSIGN_OR_RETURN(PgResult owner, tx.conn.Run("SELECT alliance FROM consults WHERE id=$1",
                                                 PgParams().Add(row.consult_id)));
    const std::string alliance = owner.rows() > 0 ? owner.Bytes(0, 0) : AllianceOf(row.author);
    std::vector<NewMessage> messages = announce(out.row);  // fills out.row.body
    RETURN_IF_ERROR(tx.conn.Queue("INSERT INTO consult_messages(" THREAD_COLUMNS
                                  ", alliance) VALUES($1,$2,$3::bigint,$4,$5,$6::bigint,$7,$8)",
                                  PgParams()
                                      .Add(out.row.id)
                                      .Add(out.row.consult_id)
                                      .Add(static_cast<int64_t>(out.row.seq))
                                      .Add(out.row.author)
                                      .Add(out.row.client_request_id)
                                      .Add(out.row.at)
                                      .Bytes(out.row.body)
                                      .Add(alliance)));
    for (const NewMessage& m : messages)
      RETURN_IF_ERROR(Enqueue(tx.conn, m, row.at, QueueAlliance(m.queue)));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultMessageRow>> PostgresStore::ListConsultMessages(
    const std::string& consult_id, uint64_t after_seq) {
  std::vector<ConsultMessageRow> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        PgResult r, c.Run("SELECT " THREAD_COLUMNS " FROM consult_messages WHERE consult_id=$1 AND "
                          "seq>$2::bigint ORDER BY seq",
                          PgParams().Add(consult_id).Add(static_cast<int64_t>(after_seq))));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadThreadMessage(r, i));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultRecord>> PostgresStore::ListConsults(const ConsultQuery& q) {
  std::vector<ConsultRecord> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    PgParams p;
    p.Add(q.party).Add(q.alliance).Add(q.institution).Add(q.state).Add(q.service);
    p.Add(q.priority).Add(q.requested_from).Add(q.requested_to).Add(q.after_requested_at);
    p.Add(q.after_id).Add(static_cast<int64_t>(q.limit));
    // Built per filter shape, as in the SQLite store (internal/list_query.h).
    ASSIGN_OR_RETURN(PgResult r, c.RunOnce(internal::ConsultListSql(
                                               q, CONSULT_COLUMNS, internal::SqlDialect::kPostgres),
                                           p));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadConsult(r, i));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultRecord>> PostgresStore::ListDueConsults(Micros now,
                                                                          size_t limit) {
  std::vector<ConsultRecord> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r,
                     c.Run("SELECT " CONSULT_COLUMNS " FROM consults WHERE due_at IS NOT NULL AND "
                           "due_at<=$1::bigint ORDER BY due_at LIMIT $2::bigint",
                           PgParams().Add(now).Add(static_cast<int64_t>(limit))));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadConsult(r, i));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::optional<Micros>> PostgresStore::NextConsultDue() {
  std::optional<Micros> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT MIN(due_at) FROM consults"));
    if (r.rows() > 0 && !r.IsNull(0, 0)) out = r.Int(0, 0);
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PostgresStore::AppendAudit(const std::vector<AuditRow>& rows) {
  if (rows.empty()) return absl::OkStatus();
  return writer_->Write([&](PgTx& tx) -> absl::Status {
    tx.audit.insert(tx.audit.end(), rows.begin(), rows.end());
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<AuditRow>> PostgresStore::ListAudit(const AuditQuery& q) {
  std::vector<AuditRow> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    PgParams p;
    p.Add(static_cast<int64_t>(q.after_seq)).Add(q.alliance).Add(q.actor).Add(q.subject);
    p.Add(q.from).Add(q.to).Add(q.patient_key).Add(static_cast<int64_t>(q.limit));
    ASSIGN_OR_RETURN(
        PgResult r,
        c.Run("SELECT " AUDIT_COLUMNS
              " FROM audit_log WHERE seq>$1::bigint AND ($2::text='' OR alliance=$2) AND "
              "($3::text='' OR actor=$3) AND ($4::text='' OR subject=$4) AND "
              "($5::bigint=0 OR at>=$5) AND ($6::bigint=0 OR at<$6) AND ($7::text='' OR "
              "patient_key=$7 OR subject IN (SELECT subject FROM audit_log WHERE "
              "patient_key=$7 AND subject<>'')) ORDER BY seq LIMIT $8::bigint",
              p));
    for (int i = 0; i < r.rows(); ++i) out.push_back(ReadAudit(r, i));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<AuditAnchor> PostgresStore::GetAuditAnchor() {
  AuditAnchor out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, c.Run("SELECT upto_seq, last_hash, file, archived_at FROM "
                                       "audit_archives ORDER BY upto_seq DESC LIMIT 1"));
    if (r.rows() > 0) {
      out.upto_seq = static_cast<uint64_t>(r.Int(0, 0));
      out.last_hash = r.Bytes(0, 1);
      out.file = r.Bytes(0, 2);
      out.archived_at = r.Int(0, 3);
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<uint64_t> PostgresStore::ArchiveAudit(Micros cutoff, Micros now, size_t limit,
                                                     const AuditArchiveSink& sink) {
  uint64_t archived = 0;
  RETURN_IF_ERROR(writer_->Write([&](PgTx& tx) -> absl::Status {
    archived = 0;
    // The head is locked first: no broker appends while a prefix of the chain leaves.
    RETURN_IF_ERROR(tx.conn.Run("SELECT 1 FROM audit_head WHERE id=1 FOR UPDATE").status());
    // The chain's head by sequence, not a search by time (ArchivablePrefix).
    ASSIGN_OR_RETURN(PgResult r, tx.conn.Run("SELECT " AUDIT_COLUMNS
                                             " FROM audit_log ORDER BY seq LIMIT $1::bigint",
                                             PgParams().Add(static_cast<int64_t>(limit))));
    std::vector<AuditRow> rows;
    for (int i = 0; i < r.rows(); ++i) rows.push_back(ReadAudit(r, i));
    rows.resize(ArchivablePrefix(rows, cutoff));
    if (rows.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::string file, sink(rows));
    RETURN_IF_ERROR(tx.conn
                        .Run("INSERT INTO audit_archives(upto_seq, last_hash, file, archived_at) "
                             "VALUES($1::bigint,$2,$3,$4::bigint)",
                             PgParams()
                                 .Add(static_cast<int64_t>(rows.back().seq))
                                 .Add(rows.back().hash)
                                 .Add(file)
                                 .Add(now))
                        .status());
    RETURN_IF_ERROR(tx.conn
                        .Run("DELETE FROM audit_log WHERE seq<=$1::bigint",
                             PgParams().Add(static_cast<int64_t>(rows.back().seq)))
                        .status());
    archived = rows.size();
    return absl::OkStatus();
  }));
  return archived;
}

absl::StatusOr<uint64_t> PostgresStore::PruneResults(Micros cutoff) {
  uint64_t pruned = 0;
  RETURN_IF_ERROR(writer_->Write([&](PgTx& tx) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult r, tx.conn.Run("DELETE FROM results WHERE received_at<$1::bigint",
                                             PgParams().Add(cutoff)));
    pruned = static_cast<uint64_t>(r.Affected());
    return tx.conn.Run("DELETE FROM retests WHERE recorded_at<$1::bigint", PgParams().Add(cutoff))
        .status();
  }));
  return pruned;
}

}  // namespace refbroker::storage

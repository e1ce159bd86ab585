// SqliteStore: consults, their history, reports and threads (schema v4, see README.md).

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/storage/internal/list_query.h"
#include "broker/storage/sqlite_store.h"

namespace refbroker::storage {
namespace {

using internal::Db;
using internal::Stmt;

constexpr char kConsultColumns[] =
    "id, requester, target, client_request_id, request_digest, state, priority, service, "
    "alliance, requested_at, updated_at, due_at, version, body";

ConsultRecord ReadConsult(const Stmt& st) {
  ConsultRecord r;
  r.id = st.Text(0);
  r.requester = st.Text(1);
  r.target = st.Text(2);
  r.client_request_id = st.Text(3);
  r.request_digest = st.Text(4);
  r.state = static_cast<int>(st.Int(5));
  r.priority = static_cast<int>(st.Int(6));
  r.service = static_cast<int>(st.Int(7));
  r.alliance = st.Text(8);
  r.requested_at = st.Int(9);
  r.updated_at = st.Int(10);
  r.due_at = st.IsNull(11) ? 0 : st.Int(11);
  r.version = st.Int(12);
  r.body = st.Text(13);
  return r;
}

constexpr char kEventColumns[] = "consult_id, actor, client_request_id, action, at, body";

ConsultEventRecord ReadEvent(const Stmt& st) {
  return {st.Text(0), st.Text(1), st.Text(2), static_cast<int>(st.Int(3)), st.Int(4), st.Text(5)};
}

constexpr char kMessageColumns[] = "id, consult_id, seq, author, client_request_id, at, body";

ConsultMessageRow ReadMessage(const Stmt& st) {
  ConsultMessageRow m;
  m.id = st.Text(0);
  m.consult_id = st.Text(1);
  m.seq = static_cast<uint64_t>(st.Int(2));
  m.author = st.Text(3);
  m.client_request_id = st.Text(4);
  m.at = st.Int(5);
  m.body = st.Text(6);
  return m;
}

absl::Status InsertEvent(Db& db, const ConsultEventRecord& e) {
  ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO consult_events(consult_id, actor, "
                                       "client_request_id, action, at, body) VALUES(?,?,?,?,?,?)"));
  st->Bind(1, e.consult_id).Bind(2, e.actor).Bind(3, e.client_request_id).Bind(4, e.action);
  st->Bind(5, e.at).BindBlob(6, e.body);
  return st->Run();
}

// `client_request_id<>''` lets SQLite use the partial index of request ids: without it every
// lookup scanned every event (O(history) per transition; the soak's latency drift).
absl::StatusOr<std::optional<ConsultEventRecord>> FindEvent(Db& db, const std::string& actor,
                                                            const std::string& request_id) {
  static const std::string sql = absl::StrCat("SELECT ", kEventColumns,
                                              " FROM consult_events WHERE actor=? AND "
                                              "client_request_id=? AND client_request_id<>''");
  ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
  st->Bind(1, actor).Bind(2, request_id);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<ConsultEventRecord>();
  return std::optional<ConsultEventRecord>(ReadEvent(*st));
}

absl::Status InsertConsult(Db& db, const ConsultRecord& r) {
  static const std::string sql = absl::StrCat("INSERT INTO consults(", kConsultColumns,
                                              ") VALUES(?,?,?,?,?,?,?,?,?,?,?,NULLIF(?,0),1,?)");
  ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
  st->Bind(1, r.id).Bind(2, r.requester).Bind(3, r.target).Bind(4, r.client_request_id);
  st->BindBlob(5, r.request_digest).Bind(6, r.state).Bind(7, r.priority).Bind(8, r.service);
  st->Bind(9, r.alliance).Bind(10, r.requested_at).Bind(11, r.updated_at).Bind(12, r.due_at);
  st->BindBlob(13, r.body);
  return st->Run();
}

absl::Status InsertReport(Db& db, const ConsultReportRow& r) {
  ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT INTO consult_reports(id, consult_id, issued_at, "
                                       "sha256, addendum_to, body) VALUES(?,?,?,?,?,?)"));
  st->Bind(1, r.id).Bind(2, r.consult_id).Bind(3, r.issued_at).Bind(4, r.sha256);
  st->Bind(5, r.addendum_to).BindBlob(6, r.body);
  absl::Status s = st->Run();
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(absl::StrCat("report '", r.id, "' exists and is immutable"));
  }
  return s;
}

}  // namespace

// Defined in sqlite_store.cc.
absl::StatusOr<uint64_t> SqliteEnqueue(Db& db, const NewMessage& m, Micros now);

absl::StatusOr<ConsultSubmitResult> SqliteStore::SubmitConsult(
    const ConsultRecord& consult, const ConsultEventRecord& event,
    const std::vector<NewMessage>& messages) {
  ConsultSubmitResult result;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
    static const std::string find = absl::StrCat(
        "SELECT ", kConsultColumns, " FROM consults WHERE requester=? AND client_request_id=?");
    ASSIGN_OR_RETURN(auto q, db.Prepare(find.c_str()));
    q->Bind(1, consult.requester).Bind(2, consult.client_request_id);
    ASSIGN_OR_RETURN(bool found, q->Step());
    if (found) {
      result.consult = ReadConsult(*q);
      if (result.consult.request_digest != consult.request_digest) {
        return absl::AlreadyExistsError(
            "consult.client_request_id: already used by this institution for a different "
            "consult");
      }
      result.duplicate = true;
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(InsertConsult(db, consult));
    RETURN_IF_ERROR(InsertEvent(db, event));
    for (const NewMessage& m : messages) {
      RETURN_IF_ERROR(SqliteEnqueue(db, m, consult.requested_at).status());
    }
    result.consult = consult;
    result.consult.version = 1;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<ConsultRecord> SqliteStore::GetConsult(const std::string& id) {
  ConsultRecord out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    static const std::string sql =
        absl::StrCat("SELECT ", kConsultColumns, " FROM consults WHERE id=?");
    ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
    st->Bind(1, id);
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return absl::NotFoundError(absl::StrCat("consult '", id, "' not found"));
    out = ReadConsult(*st);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ConsultChangeResult> SqliteStore::ChangeConsult(const ConsultChange& c) {
  ConsultChangeResult result;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
    if (!c.event.client_request_id.empty()) {
      ASSIGN_OR_RETURN(auto earlier, FindEvent(db, c.event.actor, c.event.client_request_id));
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
    ASSIGN_OR_RETURN(auto up, db.Prepare("UPDATE consults SET state=?, due_at=NULLIF(?,0), "
                                         "updated_at=?, body=?, version=version+1 WHERE id=? "
                                         "AND version=?"));
    up->Bind(1, c.state).Bind(2, c.due_at).Bind(3, c.updated_at).BindBlob(4, c.body);
    up->Bind(5, c.consult_id).Bind(6, c.expected_version);
    RETURN_IF_ERROR(up->Run());
    if (db.Changes() == 0) {
      ASSIGN_OR_RETURN(auto q, db.Prepare("SELECT 1 FROM consults WHERE id=?"));
      q->Bind(1, c.consult_id);
      ASSIGN_OR_RETURN(bool exists, q->Step());
      return exists ? absl::AbortedError("consult changed concurrently; retry")
                    : absl::NotFoundError(absl::StrCat("consult '", c.consult_id, "' not found"));
    }
    RETURN_IF_ERROR(InsertEvent(db, c.event));
    if (c.report) RETURN_IF_ERROR(InsertReport(db, *c.report));
    for (const NewMessage& m : c.messages) {
      RETURN_IF_ERROR(SqliteEnqueue(db, m, c.updated_at).status());
    }
    result.event = c.event;
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<std::optional<ConsultEventRecord>> SqliteStore::FindConsultEvent(
    const std::string& actor, const std::string& client_request_id) {
  std::optional<ConsultEventRecord> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(out, FindEvent(db, actor, client_request_id));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultEventRecord>> SqliteStore::ListConsultEvents(
    const std::string& consult_id) {
  std::vector<ConsultEventRecord> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    static const std::string sql = absl::StrCat("SELECT ", kEventColumns,
                                                " FROM consult_events WHERE consult_id=? "
                                                "ORDER BY seq");
    ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
    st->Bind(1, consult_id);
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) { out.push_back(ReadEvent(row)); }));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultReportRow>> SqliteStore::ListConsultReports(
    const std::string& consult_id) {
  std::vector<ConsultReportRow> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT id, consult_id, sha256, addendum_to, issued_at, "
                                         "body FROM consult_reports WHERE consult_id=? ORDER BY "
                                         "issued_at, rowid"));
    st->Bind(1, consult_id);
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) {
      out.push_back({row.Text(0), row.Text(1), row.Text(2), row.Text(3), row.Int(4), row.Text(5)});
    }));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ThreadMessageOutcome> SqliteStore::AppendConsultMessage(
    const ConsultMessageRow& row, const ThreadMessageAnnouncer& announce) {
  ThreadMessageOutcome out;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
    static const std::string find =
        absl::StrCat("SELECT ", kMessageColumns,
                     " FROM consult_messages WHERE author=? AND client_request_id=?");
    ASSIGN_OR_RETURN(auto q, db.Prepare(find.c_str()));
    q->Bind(1, row.author).Bind(2, row.client_request_id);
    ASSIGN_OR_RETURN(bool found, q->Step());
    if (found) {
      out.row = ReadMessage(*q);
      if (out.row.consult_id != row.consult_id) {
        return absl::AlreadyExistsError(
            "message.client_request_id: already used by this institution for another message");
      }
      out.duplicate = true;
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(auto next, db.Prepare("SELECT COALESCE(MAX(seq), 0) + 1 FROM "
                                           "consult_messages WHERE consult_id=?"));
    next->Bind(1, row.consult_id);
    ASSIGN_OR_RETURN(bool got, next->Step());
    out.row = row;
    out.row.seq = got ? static_cast<uint64_t>(next->Int(0)) : 1;
    std::vector<NewMessage> messages = announce(out.row);  // fills out.row.body
    static const std::string sql =
        absl::StrCat("INSERT INTO consult_messages(", kMessageColumns, ") VALUES(?,?,?,?,?,?,?)");
    ASSIGN_OR_RETURN(auto ins, db.Prepare(sql.c_str()));
    ins->Bind(1, out.row.id).Bind(2, out.row.consult_id);
    ins->Bind(3, static_cast<int64_t>(out.row.seq)).Bind(4, out.row.author);
    ins->Bind(5, out.row.client_request_id).Bind(6, out.row.at).BindBlob(7, out.row.body);
    RETURN_IF_ERROR(ins->Run());
    for (const NewMessage& m : messages) RETURN_IF_ERROR(SqliteEnqueue(db, m, row.at).status());
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultMessageRow>> SqliteStore::ListConsultMessages(
    const std::string& consult_id, uint64_t after_seq) {
  std::vector<ConsultMessageRow> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    static const std::string sql =
        absl::StrCat("SELECT ", kMessageColumns,
                     " FROM consult_messages WHERE consult_id=? AND seq>? ORDER BY seq");
    ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
    st->Bind(1, consult_id).Bind(2, static_cast<int64_t>(after_seq));
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& r) { out.push_back(ReadMessage(r)); }));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultRecord>> SqliteStore::ListConsults(const ConsultQuery& q) {
  std::vector<ConsultRecord> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.PrepareBuilt(internal::ConsultListSql(q, kConsultColumns)));
    st->Bind(1, q.party).Bind(2, q.alliance).Bind(3, q.institution).Bind(4, q.state);
    st->Bind(5, q.service).Bind(6, q.priority).Bind(7, q.requested_from).Bind(8, q.requested_to);
    st->Bind(9, q.after_requested_at).Bind(10, q.after_id);
    st->Bind(11, static_cast<int64_t>(q.limit));
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) { out.push_back(ReadConsult(row)); }));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ConsultRecord>> SqliteStore::ListDueConsults(Micros now, size_t limit) {
  std::vector<ConsultRecord> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    static const std::string sql =
        absl::StrCat("SELECT ", kConsultColumns,
                     " FROM consults WHERE due_at IS NOT NULL AND due_at<=? "
                     "ORDER BY due_at LIMIT ?");
    ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
    st->Bind(1, now).Bind(2, static_cast<int64_t>(limit));
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) { out.push_back(ReadConsult(row)); }));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::optional<Micros>> SqliteStore::NextConsultDue() {
  std::optional<Micros> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st,
                     db.Prepare("SELECT MIN(due_at) FROM consults WHERE due_at IS NOT NULL"));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (row && !st->IsNull(0)) out = st->Int(0);
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace refbroker::storage

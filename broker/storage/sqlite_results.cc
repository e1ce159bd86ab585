// SqliteStore: result records and re-test reasons (schema v3, see README.md).

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/storage/internal/patient_no.h"
#include "broker/storage/sqlite_store.h"

namespace refbroker::storage {
namespace {

using internal::Db;
using internal::Stmt;

constexpr char kResultColumns[] =
    "id, publisher, client_request_id, request_digest, patient_key, item_code, kind, "
    "performed_at, received_at, repeat_without_reason, body";

ResultRow ReadResult(const Stmt& st) {
  ResultRow r;
  r.id = st.Text(0);
  r.publisher = st.Text(1);
  r.client_request_id = st.Text(2);
  r.request_digest = st.Text(3);
  r.patient_key = st.Text(4);
  r.item_code = st.Text(5);
  r.kind = static_cast<int>(st.Int(6));
  r.performed_at = st.Int(7);
  r.received_at = st.Int(8);
  r.repeat_without_reason = st.Int(9) != 0;
  r.body = st.Text(10);
  return r;
}

constexpr char kRetestColumns[] =
    "id, institution, client_request_id, patient_key, item_code, reason, recorded_at, "
    "used_by_result_id, body";

RetestRow ReadRetest(const Stmt& st) {
  RetestRow r;
  r.id = st.Text(0);
  r.institution = st.Text(1);
  r.client_request_id = st.Text(2);
  r.patient_key = st.Text(3);
  r.item_code = st.Text(4);
  r.reason = static_cast<int>(st.Int(5));
  r.recorded_at = st.Int(6);
  r.used_by_result_id = st.Text(7);
  r.body = st.Text(8);
  return r;
}

absl::Status InsertResult(Db& db, const ResultRow& r) {
  static const std::string sql = absl::StrCat("INSERT INTO results(", kResultColumns,
                                              ", patient_no) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
  ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
  st->Bind(1, r.id).Bind(2, r.publisher).Bind(3, r.client_request_id);
  st->BindBlob(4, r.request_digest).Bind(5, r.patient_key).Bind(6, r.item_code);
  st->Bind(7, r.kind).Bind(8, r.performed_at).Bind(9, r.received_at);
  st->Bind(10, r.repeat_without_reason ? 1 : 0).BindBlob(11, r.body);
  st->Bind(12, internal::PatientNo(r.patient_key));
  return st->Run();
}

const std::string kPriorsSql =
    absl::StrCat("SELECT ", kResultColumns,
                 " FROM results WHERE patient_no=?1 AND patient_key=?2 AND item_code=?3"
                 " ORDER BY performed_at DESC LIMIT ?4");

const std::string kResultByRowidSql =
    absl::StrCat("SELECT ", kResultColumns, " FROM results WHERE rowid=?");

absl::StatusOr<std::optional<RetestRow>> FindUnused(Db& db, const std::string& institution,
                                                    const std::string& patient_key,
                                                    const std::string& item_code) {
  static const std::string sql =
      absl::StrCat("SELECT ", kRetestColumns,
                   " FROM retests WHERE institution=? AND patient_key=? AND item_code=? AND "
                   "used_by_result_id='' ORDER BY recorded_at LIMIT 1");
  ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
  st->Bind(1, institution).Bind(2, patient_key).Bind(3, item_code);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<RetestRow>();
  return std::optional<RetestRow>(ReadRetest(*st));
}

}  // namespace

// Defined in sqlite_store.cc; shared by the result operations.
absl::StatusOr<uint64_t> SqliteEnqueue(Db& db, const NewMessage& m, Micros now);

absl::StatusOr<PublishOutcome> SqliteStore::PublishResult(const ResultRow& row,
                                                          const PublishDecider& decide) {
  PublishOutcome out;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
    static const std::string find = absl::StrCat(
        "SELECT ", kResultColumns, " FROM results WHERE publisher=? AND client_request_id=?");
    ASSIGN_OR_RETURN(auto q, db.Prepare(find.c_str()));
    q->Bind(1, row.publisher).Bind(2, row.client_request_id);
    ASSIGN_OR_RETURN(bool found, q->Step());
    if (found) {
      out.row = ReadResult(*q);
      if (out.row.request_digest != row.request_digest) {
        return absl::AlreadyExistsError(
            "result.client_request_id: already used by this institution for a different result");
      }
      out.duplicate = true;
      return absl::OkStatus();
    }
    // The look happens on the writer's connection, whose page cache stays warm (a reader's is
    // dropped at every commit), and touches the index leaf the insert below writes.
    PriorScan priors = [&](const PriorFilter& filter, const PriorVisitor& visit) -> absl::Status {
      ASSIGN_OR_RETURN(auto entries, db.Prepare(SqliteStore::kPriorEntriesSql));
      ASSIGN_OR_RETURN(auto by_rowid, db.Prepare(kResultByRowidSql.c_str()));
      entries->Bind(1, internal::PatientNo(row.patient_key)).Bind(2, row.item_code);
      entries->Bind(3, row.performed_at);
      absl::Status read = absl::OkStatus();
      RETURN_IF_ERROR(entries->ForEachRowWhile([&](const Stmt& e) {
        if (!filter(e.Text(1), e.Int(2))) return true;
        by_rowid->Bind(1, e.Int(0));
        std::optional<ResultRow> prior;
        read = by_rowid->ForEachRow([&](const Stmt& r) { prior = ReadResult(r); });
        if (!read.ok()) return false;
        if (!prior || prior->patient_key != row.patient_key) return true;
        return visit(*prior);
      }));
      return read;
    };
    UnusedRetestLookup lookup = [&]() -> absl::StatusOr<std::optional<RetestRow>> {
      return FindUnused(db, row.publisher, row.patient_key, row.item_code);
    };
    out.row = row;
    ASSIGN_OR_RETURN(PublishDecision decision, decide(priors, lookup, out.row));
    if (!decision.use_retest_id.empty()) {
      ASSIGN_OR_RETURN(auto use, db.Prepare("UPDATE retests SET used_by_result_id=? WHERE id=? "
                                            "AND used_by_result_id=''"));
      use->Bind(1, out.row.id).Bind(2, decision.use_retest_id);
      RETURN_IF_ERROR(use->Run());
      if (db.Changes() == 0) return absl::AbortedError("re-test reason used meanwhile; retry");
    }
    RETURN_IF_ERROR(InsertResult(db, out.row));
    for (const NewMessage& m : decision.messages) {
      RETURN_IF_ERROR(SqliteEnqueue(db, m, row.received_at).status());
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ResultRow> SqliteStore::GetResult(const std::string& id) {
  ResultRow out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    static const std::string sql =
        absl::StrCat("SELECT ", kResultColumns, " FROM results WHERE id=?");
    ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
    st->Bind(1, id);
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return absl::NotFoundError(absl::StrCat("result '", id, "' not found"));
    out = ReadResult(*st);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ResultRow>> SqliteStore::ListResults(
    const std::string& patient_key, const std::vector<std::string>& item_codes, size_t limit) {
  std::vector<ResultRow> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    if (item_codes.empty()) {
      static const std::string sql =
          absl::StrCat("SELECT ", kResultColumns,
                       " FROM results WHERE patient_no=?1 AND patient_key=?2"
                       " ORDER BY performed_at DESC LIMIT ?3");
      ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
      st->Bind(1, internal::PatientNo(patient_key)).Bind(2, patient_key);
      st->Bind(3, static_cast<int64_t>(limit));
      RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) { out.push_back(ReadResult(row)); }));
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(auto st, db.Prepare(kPriorsSql.c_str()));
    int64_t patient_no = internal::PatientNo(patient_key);
    for (const std::string& item : item_codes) {
      st->Bind(1, patient_no).Bind(2, patient_key).Bind(3, item);
      st->Bind(4, static_cast<int64_t>(limit));
      RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) { out.push_back(ReadResult(row)); }));
    }
    std::sort(out.begin(), out.end(), [](const ResultRow& a, const ResultRow& b) {
      return a.performed_at > b.performed_at;
    });
    if (out.size() > limit) out.resize(limit);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<RetestOutcome> SqliteStore::RecordRetest(const RetestRow& row) {
  RetestOutcome out;
  RETURN_IF_ERROR(WriteTxn([&](Db& db) -> absl::Status {
    static const std::string find = absl::StrCat(
        "SELECT ", kRetestColumns, " FROM retests WHERE institution=? AND client_request_id=?");
    ASSIGN_OR_RETURN(auto q, db.Prepare(find.c_str()));
    q->Bind(1, row.institution).Bind(2, row.client_request_id);
    ASSIGN_OR_RETURN(bool found, q->Step());
    if (found) {
      out.row = ReadRetest(*q);
      out.duplicate = true;
      return absl::OkStatus();
    }
    static const std::string sql =
        absl::StrCat("INSERT INTO retests(", kRetestColumns, ") VALUES(?,?,?,?,?,?,?,?,?)");
    ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
    st->Bind(1, row.id).Bind(2, row.institution).Bind(3, row.client_request_id);
    st->Bind(4, row.patient_key).Bind(5, row.item_code).Bind(6, row.reason);
    st->Bind(7, row.recorded_at).Bind(8, row.used_by_result_id).BindBlob(9, row.body);
    RETURN_IF_ERROR(st->Run());
    out.row = row;
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::optional<RetestRow>> SqliteStore::FindUnusedRetest(
    const std::string& institution, const std::string& patient_key, const std::string& item_code) {
  std::optional<RetestRow> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(out, FindUnused(db, institution, patient_key, item_code));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<RetestCountRow>> SqliteStore::CountRetests(Micros from, Micros to) {
  std::vector<RetestCountRow> out;
  RETURN_IF_ERROR(ReadTxn([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st,
                     db.Prepare("SELECT institution, reason, COUNT(*) FROM retests WHERE "
                                "recorded_at>=?1 AND (?2=0 OR recorded_at<?2) GROUP BY "
                                "institution, reason UNION ALL SELECT publisher, 0, COUNT(*) "
                                "FROM results WHERE repeat_without_reason=1 AND "
                                "received_at>=?1 AND (?2=0 OR received_at<?2) GROUP BY "
                                "publisher ORDER BY 1, 2"));
    st->Bind(1, from).Bind(2, to);
    RETURN_IF_ERROR(st->ForEachRow([&](const Stmt& row) {
      out.push_back({row.Text(0), static_cast<int>(row.Int(1)), static_cast<uint64_t>(row.Int(2))});
    }));
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace refbroker::storage

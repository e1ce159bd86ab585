// SqliteStore: the audit trail (schema v5), result retention, and the write path that carries a
// request's audit entries into its own transaction.

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/storage/audit_chain.h"
#include "broker/storage/audit_scope.h"
#include "broker/storage/internal/list_query.h"
#include "broker/storage/internal/patient_no.h"
#include "broker/storage/sqlite_store.h"

namespace refbroker::storage {

using internal::Db;
using internal::Stmt;

// Appends `rows` after the chain's head, assigning seq and hashes (inside the caller's
// transaction, so the head read here is the committed order).
absl::Status SqliteInsertAudit(Db& db, std::vector<AuditRow>& rows) {
  if (rows.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto head, db.Prepare("SELECT seq, hash FROM audit_log ORDER BY seq DESC "
                                         "LIMIT 1"));
  ASSIGN_OR_RETURN(bool found, head->Step());
  uint64_t seq = 0;
  std::string prev;
  if (found) {
    seq = static_cast<uint64_t>(head->Int(0));
    prev = head->Text(1);
  } else {
    ASSIGN_OR_RETURN(auto anchor, db.Prepare("SELECT upto_seq, last_hash FROM audit_archives "
                                             "ORDER BY upto_seq DESC LIMIT 1"));
    ASSIGN_OR_RETURN(bool archived, anchor->Step());
    if (archived) {
      seq = static_cast<uint64_t>(anchor->Int(0));
      prev = anchor->Text(1);
    }
  }
  ASSIGN_OR_RETURN(auto ins, db.Prepare("INSERT INTO audit_log(seq, at, actor, alliance, action, "
                                        "subject, patient_key, peer, outcome, prev_hash, hash, "
                                        "patient_no) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"));
  for (AuditRow& row : rows) {
    row.seq = ++seq;
    row.prev_hash = prev;
    row.hash = AuditChainHash(prev, row);
    ins->Bind(1, static_cast<int64_t>(row.seq)).Bind(2, row.at).Bind(3, row.actor);
    ins->Bind(4, row.alliance).Bind(5, row.action).Bind(6, row.subject).Bind(7, row.patient_key);
    ins->Bind(8, row.peer).Bind(9, row.outcome).Bind(10, row.prev_hash).Bind(11, row.hash);
    ins->Bind(12, row.patient_key.empty() ? 0 : internal::PatientNo(row.patient_key));
    RETURN_IF_ERROR(ins->Run());
    prev = row.hash;
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::WriteTxn(std::function<absl::Status(Db&)> fn, bool late) {
  std::vector<AuditRow> audit = AuditScope::TakePending();
  if (audit.empty()) return writer_->Write(std::move(fn), late);
  absl::Status s = writer_->Write(
      [&](Db& db) -> absl::Status {
        RETURN_IF_ERROR(fn(db));
        std::vector<AuditRow> rows = audit;
        return SqliteInsertAudit(db, rows);
      },
      late);
  if (!s.ok()) AuditScope::Restore(std::move(audit));
  return s;
}

absl::Status SqliteStore::AppendAudit(const std::vector<AuditRow>& rows) {
  if (rows.empty()) return absl::OkStatus();
  return writer_->Write([&](Db& db) -> absl::Status {
    std::vector<AuditRow> copy = rows;
    return SqliteInsertAudit(db, copy);
  });
}

namespace {

AuditRow ReadAudit(const Stmt& st) {
  AuditRow r;
  r.seq = static_cast<uint64_t>(st.Int(0));
  r.at = st.Int(1);
  r.actor = st.Text(2);
  r.alliance = st.Text(3);
  r.action = st.Text(4);
  r.subject = st.Text(5);
  r.patient_key = st.Text(6);
  r.peer = st.Text(7);
  r.outcome = st.Text(8);
  r.prev_hash = st.Text(9);
  r.hash = st.Text(10);
  return r;
}

constexpr char kAuditColumns[] =
    "seq, at, actor, alliance, action, subject, patient_key, peer, outcome, prev_hash, hash";

}  // namespace

absl::StatusOr<std::vector<AuditRow>> SqliteStore::ListAudit(const AuditQuery& q) {
  std::vector<AuditRow> out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.PrepareBuilt(internal::AuditListSql(q, kAuditColumns)));
    st->Bind(1, static_cast<int64_t>(q.after_seq)).Bind(2, q.alliance).Bind(3, q.actor);
    st->Bind(4, q.subject).Bind(5, q.from).Bind(6, q.to).Bind(7, q.patient_key);
    st->Bind(8, static_cast<int64_t>(q.limit));
    st->Bind(9, q.patient_key.empty() ? 0 : internal::PatientNo(q.patient_key));
    return st->ForEachRow([&](const Stmt& row) { out.push_back(ReadAudit(row)); });
  }));
  return out;
}

absl::StatusOr<AuditAnchor> SqliteStore::GetAuditAnchor() {
  AuditAnchor out;
  RETURN_IF_ERROR(Read([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT upto_seq, last_hash, file, archived_at FROM "
                                         "audit_archives ORDER BY upto_seq DESC LIMIT 1"));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (row) {
      out.upto_seq = static_cast<uint64_t>(st->Int(0));
      out.last_hash = st->Text(1);
      out.file = st->Text(2);
      out.archived_at = st->Int(3);
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<uint64_t> SqliteStore::ArchiveAudit(Micros cutoff, Micros now, size_t limit,
                                                   const AuditArchiveSink& sink) {
  uint64_t archived = 0;
  RETURN_IF_ERROR(writer_->Write([&](Db& db) -> absl::Status {
    archived = 0;
    // The chain's head, read entry by entry until the first one not to archive: a search by
    // time (WHERE at<?) read every entry when none was old enough (ArchivablePrefix).
    static const std::string sql =
        absl::StrCat("SELECT ", kAuditColumns, " FROM audit_log ORDER BY seq LIMIT ?");
    ASSIGN_OR_RETURN(auto st, db.Prepare(sql.c_str()));
    st->Bind(1, static_cast<int64_t>(limit));
    std::vector<AuditRow> rows;
    RETURN_IF_ERROR(st->ForEachRowWhile([&](const Stmt& row) {
      AuditRow next = ReadAudit(row);
      if (!ExtendsArchivablePrefix(rows.empty() ? nullptr : &rows.back(), next, cutoff)) {
        return false;
      }
      rows.push_back(std::move(next));
      return true;
    }));
    if (rows.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::string file, sink(rows));
    ASSIGN_OR_RETURN(auto mark, db.Prepare("INSERT INTO audit_archives(upto_seq, last_hash, file, "
                                           "archived_at) VALUES(?,?,?,?)"));
    mark->Bind(1, static_cast<int64_t>(rows.back().seq)).Bind(2, rows.back().hash).Bind(3, file);
    mark->Bind(4, now);
    RETURN_IF_ERROR(mark->Run());
    ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM audit_log WHERE seq<=?"));
    del->Bind(1, static_cast<int64_t>(rows.back().seq));
    RETURN_IF_ERROR(del->Run());
    archived = rows.size();
    return absl::OkStatus();
  }));
  return archived;
}

absl::StatusOr<uint64_t> SqliteStore::PruneResults(Micros cutoff) {
  uint64_t pruned = 0;
  RETURN_IF_ERROR(writer_->Write([&](Db& db) -> absl::Status {
    ASSIGN_OR_RETURN(auto results, db.Prepare("DELETE FROM results WHERE received_at<?"));
    results->Bind(1, cutoff);
    RETURN_IF_ERROR(results->Run());
    pruned = static_cast<uint64_t>(db.Changes());
    ASSIGN_OR_RETURN(auto retests, db.Prepare("DELETE FROM retests WHERE recorded_at<?"));
    retests->Bind(1, cutoff);
    return retests->Run();
  }));
  if (pruned > 0) {
    RETURN_IF_ERROR(writer_->Write([](Db& db) { return db.Exec("PRAGMA incremental_vacuum"); }));
  }
  return pruned;
}

}  // namespace refbroker::storage

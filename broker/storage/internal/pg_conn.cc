#include "broker/storage/internal/pg_conn.h"

#include <arpa/inet.h>

#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "broker/common/status_macros.h"

namespace refbroker::storage::internal {

namespace {
// pg_type's OIDs (catalog/pg_type_d.h, not installed with libpq).
constexpr Oid kInt8Oid = 20, kTextOid = 25, kByteaOid = 17;
}  // namespace

PgParams& PgParams::Add(int64_t v) {
  values_.emplace_back(std::to_string(v));
  formats_.push_back(0);
  types_.push_back(kInt8Oid);
  return *this;
}

PgParams& PgParams::Add(const std::string& v) {
  values_.emplace_back(v);
  formats_.push_back(0);
  types_.push_back(kTextOid);
  return *this;
}

PgParams& PgParams::Bytes(const std::string& v) {
  values_.emplace_back(v);
  formats_.push_back(1);
  types_.push_back(kByteaOid);
  return *this;
}

PgParams& PgParams::Null() {
  values_.emplace_back(std::nullopt);
  formats_.push_back(0);
  types_.push_back(0);
  return *this;
}

std::vector<const char*> PgParams::Pointers() const {
  std::vector<const char*> out;
  for (const auto& v : values_) out.push_back(v ? v->c_str() : nullptr);
  return out;
}

std::vector<int> PgParams::Lengths() const {
  std::vector<int> out;
  for (const auto& v : values_) out.push_back(v ? static_cast<int>(v->size()) : 0);
  return out;
}

int64_t PgResult::Int(int row, int col) const {
  if (IsNull(row, col)) return 0;
  const char* p = PQgetvalue(r_.get(), row, col);
  switch (PQgetlength(r_.get(), row, col)) {
    case 1:
      return static_cast<unsigned char>(p[0]);
    case 2: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return static_cast<int16_t>(ntohs(v));
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return static_cast<int32_t>(ntohl(v));
    }
    case 8: {
      uint32_t hi, lo;
      std::memcpy(&hi, p, 4);
      std::memcpy(&lo, p + 4, 4);
      return static_cast<int64_t>((static_cast<uint64_t>(ntohl(hi)) << 32) | ntohl(lo));
    }
    default:
      return 0;
  }
}

std::string PgResult::Bytes(int row, int col) const {
  return std::string(PQgetvalue(r_.get(), row, col),
                     static_cast<size_t>(PQgetlength(r_.get(), row, col)));
}

int64_t PgResult::Affected() const {
  const char* n = PQcmdTuples(r_.get());
  return (n == nullptr || *n == '\0') ? 0 : std::strtoll(n, nullptr, 10);
}

absl::Status PgError(const std::string& sqlstate, const std::string& message, bool connection_bad) {
  std::string msg = absl::StrCat("storage (postgres): ", message);
  if (connection_bad || absl::StartsWith(sqlstate, "08") || sqlstate == "57P01" ||
      sqlstate == "57P02" || sqlstate == "57P03") {
    return absl::UnavailableError(msg);
  }
  if (sqlstate == "23505") return absl::AlreadyExistsError(msg);
  if (sqlstate == "40001" || sqlstate == "40P01") return absl::AbortedError(msg);
  if (sqlstate == "53100" || sqlstate == "53200") return absl::ResourceExhaustedError(msg);
  if (sqlstate == "P0001") return absl::FailedPreconditionError(msg);
  return absl::InternalError(msg);
}

bool IsValidPgIdentifier(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (name[0] >= '0' && name[0] <= '9') return false;
  if (name.rfind("pg_", 0) == 0) return false;  // reserved for PostgreSQL's own schemas
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<PgConn>> PgConn::Connect(const std::string& conninfo,
                                                        const std::string& schema) {
  if (!IsValidPgIdentifier(schema)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config storage.schema: '", schema,
        "' must be 1-63 lower-case letters, digits or '_', not starting with a digit or "
        "pg_"));
  }
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) return absl::UnavailableError("storage (postgres): out of memory");
  std::unique_ptr<PgConn> out(new PgConn(conn, schema));
  if (PQstatus(conn) != CONNECTION_OK) {
    // The message names the server (host, port) but never the password.
    return absl::UnavailableError(absl::StrCat("storage (postgres): cannot connect: ",
                                               absl::StripAsciiWhitespace(PQerrorMessage(conn))));
  }
  if (absl::Status s = out->Setup(); !s.ok()) return s;
  return out;
}

PgConn::~PgConn() { PQfinish(conn_); }

absl::Status PgConn::Setup() {
  prepared_.clear();
  pending_.clear();
  lost_ = false;
  // Durable on COMMIT (the server's default, stated so that a changed server default cannot
  // weaken what an acknowledgement means); times and sizes never depend on the session's zone.
  // A DBA sees the broker and its schema in pg_stat_activity as "refbroker/<schema>".
  return Exec(absl::StrCat("SET synchronous_commit TO on; SET TIME ZONE 'UTC'; ",
                           "SET client_min_messages TO warning; ",
                           "SET application_name TO 'refbroker/", schema_, "'; ",
                           "SET search_path TO \"", schema_, "\""));
}

absl::Status PgConn::SetSessionSql(std::string sql) {
  session_sql_ = std::move(sql);
  return Exec(session_sql_);
}

absl::Status PgConn::Reconnect() {
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("storage (postgres): cannot reconnect: ",
                                               absl::StripAsciiWhitespace(PQerrorMessage(conn_))));
  }
  // The session is set up with plain statements first (several to a string), then pipelined.
  if (pipelined()) (void)PQexitPipelineMode(conn_);
  if (absl::Status s = Setup(); !s.ok()) return s;
  if (!session_sql_.empty()) RETURN_IF_ERROR(Exec(session_sql_));
  return wants_pipeline_ ? EnterPipelineMode() : absl::OkStatus();
}

absl::Status PgConn::EnterPipelineMode() {
  wants_pipeline_ = true;
  if (PQenterPipelineMode(conn_) != 1) return LostPipeline("enter pipeline mode");
  return absl::OkStatus();
}

absl::Status PgConn::LostPipeline(const char* what) {
  // Whatever was sent is dropped with the connection: nothing of the transaction commits.
  lost_ = true;
  pending_.clear();
  return absl::UnavailableError(absl::StrCat("storage (postgres): ", what, ": ",
                                             absl::StripAsciiWhitespace(PQerrorMessage(conn_))));
}

absl::Status PgConn::SendPrepared(const char* sql, const PgParams& params) {
  if (lost_) return LostPipeline("pipeline");
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = absl::StrCat("s", next_name_++);
    if (PQsendPrepare(conn_, name.c_str(), sql, 0, nullptr) != 1) return LostPipeline("prepare");
    pending_.push_back({sql});
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> values = params.Pointers();
  std::vector<int> lengths = params.Lengths();
  if (PQsendQueryPrepared(conn_, it->second.c_str(), static_cast<int>(params.size()), values.data(),
                          lengths.data(), params.Formats().data(),
                          /*resultFormat=*/1) != 1) {
    return LostPipeline("send");
  }
  pending_.push_back({nullptr});
  return absl::OkStatus();
}

absl::Status PgConn::SendUnprepared(const char* sql, const PgParams& params) {
  if (lost_) return LostPipeline("pipeline");
  std::vector<const char*> values = params.Pointers();
  std::vector<int> lengths = params.Lengths();
  if (PQsendQueryParams(conn_, sql, static_cast<int>(params.size()), params.Types().data(),
                        values.data(), lengths.data(), params.Formats().data(),
                        /*resultFormat=*/1) != 1) {
    return LostPipeline("send");
  }
  pending_.push_back({nullptr});
  return absl::OkStatus();
}

absl::Status PgConn::Collect(std::vector<PGresult*>* kept) {
  // The results asked for, handed over if all went well.
  auto fail = [&](absl::Status s) {
    if (kept != nullptr) {
      for (PGresult*& r : *kept) {
        PQclear(r);
        r = nullptr;
      }
    }
    return s;
  };
  if (lost_) return LostPipeline("pipeline");
  if (PQpipelineSync(conn_) != 1) return LostPipeline("sync");
  ++round_trips_;
  absl::Status first;
  for (size_t i = 0; i < pending_.size(); ++i) {
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) return fail(LostPipeline("no result"));
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    const char* prepare_of = pending_[i].prepare_of;
    if (!ok && prepare_of != nullptr) prepared_.erase(prepare_of);  // not on the server
    // The first failure is the one to report; the server skipped what came after it
    // (PGRES_PIPELINE_ABORTED).
    if (!ok && st != PGRES_PIPELINE_ABORTED && first.ok()) {
      first = Check(r, prepare_of != nullptr ? "prepare" : "statement");
      if (prepare_of != nullptr) {
        first = absl::Status(first.code(), absl::StrCat(first.message(), " [", prepare_of, "]"));
      }
    }
    const char* one_row_or = pending_[i].one_row_or;
    if (ok && one_row_or != nullptr && first.ok() && std::string_view(PQcmdTuples(r)) != "1") {
      first = absl::AbortedError(one_row_or);
      last_sqlstate_.clear();  // no statement failed: not a race to run again
    }
    const int keep = pending_[i].keep;
    if (ok && kept != nullptr && keep >= 0 && static_cast<size_t>(keep) < kept->size()) {
      (*kept)[keep] = r;
    } else {
      PQclear(r);
    }
    while (PGresult* end = PQgetResult(conn_)) PQclear(end);  // each statement ends with a null
    if (PQstatus(conn_) != CONNECTION_OK) {
      absl::Status lost = LostPipeline("connection lost");
      return fail(first.ok() ? lost : first);
    }
  }
  pending_.clear();
  PGresult* sync = PQgetResult(conn_);
  const bool in_step = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  PQclear(sync);
  if (!in_step) {
    absl::Status lost = LostPipeline("results out of step");
    return fail(first.ok() ? lost : first);
  }
  if (!first.ok()) return fail(first);
  last_sqlstate_.clear();
  return absl::OkStatus();
}

absl::Status PgConn::Queue(const char* sql, const PgParams& params) {
  return pipelined() ? SendPrepared(sql, params) : Run(sql, params).status();
}

absl::Status PgConn::QueueOneRow(const char* sql, const PgParams& params, const char* none) {
  if (!pipelined()) {
    ASSIGN_OR_RETURN(PgResult r, Run(sql, params));
    return r.Affected() == 1 ? absl::OkStatus() : absl::AbortedError(none);
  }
  RETURN_IF_ERROR(SendPrepared(sql, params));
  pending_.back().one_row_or = none;
  return absl::OkStatus();
}

absl::Status PgConn::QueueExec(const char* sql) {
  return pipelined() ? SendUnprepared(sql, PgParams()) : Exec(sql);
}

absl::Status PgConn::Sync() {
  if (!pipelined() || (pending_.empty() && !lost_)) return absl::OkStatus();
  return Collect(nullptr);
}

absl::Status PgConn::Check(PGresult* r, const char* what) {
  ExecStatusType st = r == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    last_sqlstate_.clear();
    return absl::OkStatus();
  }
  const char* state = r == nullptr ? nullptr : PQresultErrorField(r, PG_DIAG_SQLSTATE);
  last_sqlstate_ = state == nullptr ? "" : state;
  std::string message = r == nullptr ? PQerrorMessage(conn_) : PQresultErrorMessage(r);
  return PgError(last_sqlstate_, absl::StrCat(what, ": ", absl::StripAsciiWhitespace(message)),
                 PQstatus(conn_) != CONNECTION_OK);
}

absl::Status PgConn::Exec(const std::string& sql) {
  if (pipelined()) {
    RETURN_IF_ERROR(SendUnprepared(sql.c_str(), PgParams()));
    return Collect(nullptr);
  }
  ++round_trips_;
  PGresult* r = PQexec(conn_, sql.c_str());
  absl::Status s = Check(r, "exec");
  PQclear(r);
  return s;
}

absl::StatusOr<PgResult> PgConn::RunOnce(const std::string& sql, const PgParams& params) {
  if (pipelined()) {
    RETURN_IF_ERROR(SendUnprepared(sql.c_str(), params));
    pending_.back().keep = 0;
    std::vector<PGresult*> kept(1, nullptr);
    RETURN_IF_ERROR(Collect(&kept));
    return PgResult(kept[0]);
  }
  std::vector<const char*> values = params.Pointers();
  std::vector<int> lengths = params.Lengths();
  ++round_trips_;
  PGresult* r =
      PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), params.Types().data(),
                   values.data(), lengths.data(), params.Formats().data(),
                   /*resultFormat=*/1);
  if (absl::Status s = Check(r, "statement"); !s.ok()) {
    PQclear(r);
    return s;
  }
  return PgResult(r);
}

absl::StatusOr<PgResult> PgConn::Run(const char* sql, const PgParams& params) {
  if (pipelined()) {
    RETURN_IF_ERROR(SendPrepared(sql, params));
    pending_.back().keep = 0;
    std::vector<PGresult*> kept(1, nullptr);
    RETURN_IF_ERROR(Collect(&kept));
    return PgResult(kept[0]);
  }
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = absl::StrCat("s", next_name_++);
    ++round_trips_;
    PGresult* r = PQprepare(conn_, name.c_str(), sql, 0, nullptr);
    absl::Status s = Check(r, "prepare");
    PQclear(r);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(s.message(), " [", sql, "]"));
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> values = params.Pointers();
  std::vector<int> lengths = params.Lengths();
  ++round_trips_;
  PGresult* r = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(params.size()),
                               values.data(), lengths.data(), params.Formats().data(),
                               /*resultFormat=*/1);
  if (absl::Status s = Check(r, "statement"); !s.ok()) {
    PQclear(r);
    return s;
  }
  return PgResult(r);
}

absl::StatusOr<std::vector<PgResult>> PgConn::RunTogether(
    const std::vector<Statement>& statements) {
  std::vector<PgResult> out;
  if (statements.empty()) return out;
  if (!pipelined()) {
    for (const Statement& st : statements) {
      ASSIGN_OR_RETURN(PgResult r, Run(st.sql, st.params));
      if (st.read) out.push_back(std::move(r));
    }
    return out;
  }
  int reads = 0;
  for (const Statement& st : statements) {
    RETURN_IF_ERROR(SendPrepared(st.sql, st.params));
    if (st.read) pending_.back().keep = reads++;
  }
  std::vector<PGresult*> kept(reads, nullptr);
  RETURN_IF_ERROR(Collect(&kept));
  for (PGresult* r : kept) out.emplace_back(r);
  return out;
}

}  // namespace refbroker::storage::internal

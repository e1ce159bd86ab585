#include "broker/storage/internal/pg_conn.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

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
  if (absl::Status s = Setup(); !s.ok()) return s;
  return session_sql_.empty() ? absl::OkStatus() : Exec(session_sql_);
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
  PGresult* r = PQexec(conn_, sql.c_str());
  absl::Status s = Check(r, "exec");
  PQclear(r);
  return s;
}

absl::StatusOr<PgResult> PgConn::RunOnce(const std::string& sql, const PgParams& params) {
  std::vector<const char*> values = params.Pointers();
  std::vector<int> lengths = params.Lengths();
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
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = absl::StrCat("s", prepared_.size());
    PGresult* r = PQprepare(conn_, name.c_str(), sql, 0, nullptr);
    absl::Status s = Check(r, "prepare");
    PQclear(r);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(s.message(), " [", sql, "]"));
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> values = params.Pointers();
  std::vector<int> lengths = params.Lengths();
  PGresult* r = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(params.size()),
                               values.data(), lengths.data(), params.Formats().data(),
                               /*resultFormat=*/1);
  if (absl::Status s = Check(r, "statement"); !s.ok()) {
    PQclear(r);
    return s;
  }
  return PgResult(r);
}

}  // namespace refbroker::storage::internal

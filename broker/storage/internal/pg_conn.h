#pragma once
// Thin wrappers over libpq for the PostgreSQL store. Not thread-safe: one PgConn is used by one
// thread at a time (the writer thread, or one reader checked out of the pool).
//
// Statements are prepared once per connection (named after their text) and run with
// PQexecPrepared; parameters go as text except bytes (BYTEA), which go binary; results come back
// in binary format (integers big-endian, text and bytea as raw bytes).

#include <libpq-fe.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace refbroker::storage::internal {

// Statement parameters, in order ($1, $2, ...).
class PgParams {
 public:
  PgParams& Add(int64_t v);
  PgParams& Add(const std::string& v);  // TEXT
  PgParams& Add(const char* v) { return Add(std::string(v)); }
  PgParams& Bytes(const std::string& v);  // BYTEA
  PgParams& Null();

  size_t size() const { return values_.size(); }
  std::vector<const char*> Pointers() const;
  std::vector<int> Lengths() const;
  const std::vector<int>& Formats() const { return formats_; }
  // bigint, text, bytea, or 0 (NULL: the server infers it).
  const std::vector<Oid>& Types() const { return types_; }

 private:
  std::vector<std::optional<std::string>> values_;
  std::vector<int> formats_;
  std::vector<Oid> types_;
};

class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r, &PQclear) {}
  int rows() const { return PQntuples(r_.get()); }
  bool IsNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  // Integer columns of any width (int2, int4, int8, bool); 0 for NULL.
  int64_t Int(int row, int col) const;
  // Text or bytea, raw bytes.
  std::string Bytes(int row, int col) const;
  // Rows changed by an INSERT/UPDATE/DELETE.
  int64_t Affected() const;

 private:
  std::unique_ptr<PGresult, decltype(&PQclear)> r_;
};

class PgConn {
 public:
  // Connects with `conninfo` and uses `schema` (search_path). Connection failures are
  // UNAVAILABLE.
  static absl::StatusOr<std::unique_ptr<PgConn>> Connect(const std::string& conninfo,
                                                         const std::string& schema);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Runs a prepared statement (prepared on first use on this connection).
  absl::StatusOr<PgResult> Run(const char* sql, const PgParams& params = PgParams());
  // Runs a statement built at run time, unprepared and planned with its values (schema work at
  // start, the listings built per filter shape; not for hot paths). The parameters' types are
  // declared, so a statement need not name every one of them.
  absl::StatusOr<PgResult> RunOnce(const std::string& sql, const PgParams& params = PgParams());
  // Runs one or more statements without parameters (schema, transaction control).
  absl::Status Exec(const std::string& sql);

  // SQL run now and again after every Reconnect(), once the session is set up (a session's
  // settings and advisory locks end with it).
  absl::Status SetSessionSql(std::string sql);

  // Whether the connection is still usable; when not, Reconnect() before the next use.
  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
  absl::Status Reconnect();
  // The SQLSTATE of the last failed statement ("" after a success).
  const std::string& last_sqlstate() const { return last_sqlstate_; }

 private:
  PgConn(PGconn* conn, std::string schema) : conn_(conn), schema_(std::move(schema)) {}
  absl::Status Setup();
  absl::Status Check(PGresult* r, const char* what);

  PGconn* conn_;
  std::string schema_;
  std::string session_sql_;
  std::map<const char*, std::string> prepared_;  // statement text (by address) -> name
  std::string last_sqlstate_;
};

// Maps a libpq failure to a canonical status: unique violation → ALREADY_EXISTS; serialization
// failure and deadlock → ABORTED (the caller retries); disk full / out of memory →
// RESOURCE_EXHAUSTED; lost connection, shutdown, starting up → UNAVAILABLE; the rest INTERNAL.
absl::Status PgError(const std::string& sqlstate, const std::string& message, bool connection_bad);

// A schema name safe to put in SQL: lower-case letters, digits and '_' only, 1..63 characters,
// not starting with a digit or with "pg_" (reserved by PostgreSQL).
bool IsValidPgIdentifier(const std::string& name);

}  // namespace refbroker::storage::internal

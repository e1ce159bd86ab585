#pragma once
// Thin wrappers over libpq for the PostgreSQL store. Not thread-safe: one PgConn is used by one
// thread at a time (the writer thread, or one reader checked out of the pool).
//
// Statements are prepared once per connection (named after their text) and run with
// PQexecPrepared; parameters go as text except bytes (BYTEA), which go binary; results come back
// in binary format (integers big-endian, text and bytea as raw bytes).
//
// Pipeline mode (the writer's connection): a statement whose result the caller does not need is
// sent with Queue and not waited for; the next statement that returns something (Run, RunOnce,
// Exec) or Sync() sends a sync point and reads every queued statement's result before its own,
// so one round trip answers them all. A queued statement's failure is returned there, the first
// one, with its SQLSTATE; the server skips what was sent after it up to that point.

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
  // Statements sent together (RunTogether); `read`: its result is handed back.
  struct Statement {
    const char* sql;
    PgParams params;
    bool read = true;
  };
  // Runs the statements one after the other in one round trip (pipeline mode; otherwise one
  // each): the results of those marked `read`, in order, or the first failure (the server skips
  // the statements after it). For reads that do not depend on each other's answers.
  absl::StatusOr<std::vector<PgResult>> RunTogether(const std::vector<Statement>& statements);
  // Runs a statement built at run time, unprepared and planned with its values (schema work at
  // start, the listings built per filter shape; not for hot paths). The parameters' types are
  // declared, so a statement need not name every one of them.
  absl::StatusOr<PgResult> RunOnce(const std::string& sql, const PgParams& params = PgParams());
  // Runs one or more statements without parameters (schema, transaction control).
  absl::Status Exec(const std::string& sql);

  // SQL run now and again after every Reconnect(), once the session is set up (a session's
  // settings and advisory locks end with it).
  absl::Status SetSessionSql(std::string sql);

  // Enters pipeline mode, now and after every Reconnect(). Exec then takes one statement only.
  absl::Status EnterPipelineMode();
  bool pipelined() const { return PQpipelineStatus(conn_) != PQ_PIPELINE_OFF; }
  // Sends a prepared statement without waiting for its result (pipeline mode; otherwise runs it).
  absl::Status Queue(const char* sql, const PgParams& params = PgParams());
  // Queue for a statement that must change exactly one row (an UPDATE of a row the transaction
  // holds locked): if it changes another number, the sync that reads it fails with ABORTED and
  // `none` as its message (the statements sent after it have run: the caller rolls back).
  absl::Status QueueOneRow(const char* sql, const PgParams& params, const char* none);
  // Sends one statement without parameters (SAVEPOINT, BEGIN) the same way.
  absl::Status QueueExec(const char* sql);
  // Waits for every queued statement: the first failure among them, or OK.
  absl::Status Sync();
  // How many times this connection has waited for the server's answer.
  uint64_t round_trips() const { return round_trips_; }

  // Whether the connection is still usable; when not, Reconnect() before the next use.
  bool broken() const { return lost_ || PQstatus(conn_) != CONNECTION_OK; }
  absl::Status Reconnect();
  // The SQLSTATE of the last failed statement ("" after a success).
  const std::string& last_sqlstate() const { return last_sqlstate_; }

 private:
  PgConn(PGconn* conn, std::string schema) : conn_(conn), schema_(std::move(schema)) {}
  absl::Status Setup();
  absl::Status Check(PGresult* r, const char* what);
  // Pipeline mode: sends `sql`'s prepare on first use, then its execution.
  absl::Status SendPrepared(const char* sql, const PgParams& params);
  absl::Status SendUnprepared(const char* sql, const PgParams& params);
  // Pipeline mode: sends a sync point and reads every pending result; those of statements
  // marked `keep` go to (*kept)[keep] when everything succeeded.
  absl::Status Collect(std::vector<PGresult*>* kept);
  absl::Status LostPipeline(const char* what);

  // A statement sent in pipeline mode and not yet read: its prepare (`prepare_of`: the text
  // prepared, forgotten if the prepare did not succeed) or its execution (nullptr); an
  // execution that must change one row carries the message of its failure (`one_row_or`).
  struct Pending {
    const char* prepare_of;
    const char* one_row_or = nullptr;
    int keep = -1;  // where Collect hands its result over (-1: not read back)
  };

  PGconn* conn_;
  std::string schema_;
  std::string session_sql_;
  std::map<const char*, std::string> prepared_;  // statement text (by address) -> name
  uint64_t next_name_ = 0;
  uint64_t round_trips_ = 0;
  std::string last_sqlstate_;
  bool wants_pipeline_ = false;  // EnterPipelineMode() was called: again after Reconnect()
  bool lost_ = false;            // the pipeline's results came out of step: reconnect
  std::vector<Pending> pending_;
};

// Maps a libpq failure to a canonical status: unique violation → ALREADY_EXISTS; serialization
// failure and deadlock → ABORTED (the caller retries); disk full / out of memory →
// RESOURCE_EXHAUSTED; lost connection, shutdown, starting up → UNAVAILABLE; the rest INTERNAL.
absl::Status PgError(const std::string& sqlstate, const std::string& message, bool connection_bad);

// A schema name safe to put in SQL: lower-case letters, digits and '_' only, 1..63 characters,
// not starting with a digit or with "pg_" (reserved by PostgreSQL).
bool IsValidPgIdentifier(const std::string& name);

}  // namespace refbroker::storage::internal

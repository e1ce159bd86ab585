#pragma once
// Thin RAII wrappers over the SQLite C API for the SQLite store. Not thread-safe: one Db is
// used by one thread at a time (the writer thread, or one reader checked out of the pool).

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace refbroker::storage::internal {

// Maps an SQLite result code to a canonical status. SQLITE_FULL → RESOURCE_EXHAUSTED;
// I/O errors and corruption → INTERNAL (the caller latches them); constraint → ALREADY_EXISTS.
absl::Status SqliteError(int rc, sqlite3* db, const char* what);

// True for result codes after which the database must not be written to again
// (I/O error, corruption, not a database).
bool IsFatalSqliteCode(int rc);

class Db;

// A prepared statement borrowed from Db's cache; reset and unbound when destroyed.
class Stmt {
 public:
  Stmt(Db& db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int index, int64_t value);
  Stmt& Bind(int index, const std::string& value);  // as TEXT
  Stmt& BindBlob(int index, const std::string& value);

  // Ready to be bound and stepped again (after a Step that stopped at a row).
  void Reset() { sqlite3_reset(stmt_); }
  // Next row: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Runs to completion (for statements without rows).
  absl::Status Run();
  // Calls `fn` for each row, then resets the statement so it can be bound and run again.
  absl::Status ForEachRow(const std::function<void(const Stmt&)>& fn);
  // As ForEachRow, stopping (and resetting the statement) at the first row `fn` returns false.
  absl::Status ForEachRowWhile(const std::function<bool(const Stmt&)>& fn);

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const;

 private:
  Db& db_;
  sqlite3_stmt* stmt_;
};

class Db {
 public:
  // Opens (creating if needed) the database at `path`.
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& path, bool read_only);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // A cached prepared statement for `sql` (which must outlive the Db: use literals).
  absl::StatusOr<std::unique_ptr<Stmt>> Prepare(const char* sql);
  // The same for a statement built at run time (cached by its text: build a bounded number of
  // shapes, as ListSql does).
  absl::StatusOr<std::unique_ptr<Stmt>> PrepareBuilt(const std::string& sql);
  // Runs one or more statements without results.
  absl::Status Exec(const std::string& sql);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  int64_t LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
  sqlite3* raw() { return db_; }

  // Logs (warning) each statement of this connection that takes longer than `ms` (0: off),
  // naming the connection as `role`: its text with its placeholders, never the values bound to
  // them (patient identity stays out of logs). At most one line a second per connection; the
  // next line says how many it left out.
  void LogSlowStatements(int ms, std::string role);

  // Remembers a fatal error seen by any statement on this connection.
  void NoteError(int rc) {
    if (IsFatalSqliteCode(rc)) fatal_rc_ = rc;
  }
  int fatal_rc() const { return fatal_rc_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  absl::StatusOr<sqlite3_stmt*> Compile(const char* sql);

  std::map<const char*, sqlite3_stmt*> cache_;
  std::map<std::string, sqlite3_stmt*> built_;
  int fatal_rc_ = SQLITE_OK;
  struct SlowLog {
    int64_t threshold_ns = 0;
    std::string role;
    int64_t last_line_ns = 0;  // steady clock
    uint64_t left_out = 0;
  };
  SlowLog slow_;
  static int OnProfile(unsigned type, void* self, void* stmt, void* nanoseconds);
};

}  // namespace refbroker::storage::internal

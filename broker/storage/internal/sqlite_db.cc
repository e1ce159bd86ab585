#include "broker/storage/internal/sqlite_db.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/storage/internal/no_readahead.h"
#include "broker/storage/internal/wal_write_buffer.h"

namespace refbroker::storage::internal {

bool IsFatalSqliteCode(int rc) {
  int primary = rc & 0xff;
  return primary == SQLITE_IOERR || primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB ||
         primary == SQLITE_CANTOPEN;
}

absl::Status SqliteError(int rc, sqlite3* db, const char* what) {
  std::string msg = absl::StrCat("storage: ", what, ": ", sqlite3_errstr(rc));
  if (db != nullptr && sqlite3_errmsg(db) != nullptr) {
    absl::StrAppend(&msg, " (", sqlite3_errmsg(db), ")");
  }
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(msg);
    default:
      return absl::InternalError(msg);
  }
}

Stmt::~Stmt() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Stmt& Stmt::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Stmt& Stmt::Bind(int index, const std::string& value) {
  sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::BindBlob(int index, const std::string& value) {
  sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}

absl::StatusOr<bool> Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.NoteError(rc);
  return SqliteError(rc, db_.raw(), "step");
}

absl::Status Stmt::Run() {
  for (;;) {
    auto row = Step();
    if (!row.ok() || !*row) {
      sqlite3_reset(stmt_);  // ready to be bound and run again
      return row.ok() ? absl::OkStatus() : row.status();
    }
  }
}

absl::Status Stmt::ForEachRow(const std::function<void(const Stmt&)>& fn) {
  return ForEachRowWhile([&](const Stmt& row) {
    fn(row);
    return true;
  });
}

absl::Status Stmt::ForEachRowWhile(const std::function<bool(const Stmt&)>& fn) {
  for (;;) {
    auto row = Step();
    if (!row.ok() || !*row || !fn(*this)) {
      sqlite3_reset(stmt_);
      return row.ok() ? absl::OkStatus() : row.status();
    }
  }
}

std::string Stmt::Text(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}

absl::StatusOr<std::unique_ptr<Db>> Db::Open(const std::string& path, bool read_only) {
  sqlite3* raw = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  // Through the VFS that writes a commit's WAL frames at once (wal_write_buffer.h), onto files
  // opened without readahead (no_readahead.h).
  OpenFilesWithoutReadahead();
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, RegisterWalWriteBuffer());
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(rc, raw, "open");
    sqlite3_close_v2(raw);
    return absl::Status(s.code(), absl::StrCat(s.message(), ": ", path));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 10000);
  return std::unique_ptr<Db>(new Db(raw));
}

Db::~Db() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  for (auto& [sql, stmt] : built_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

void Db::LogSlowStatements(int ms, std::string role) {
  slow_.threshold_ns = static_cast<int64_t>(ms) * 1000000;
  slow_.role = std::move(role);
  sqlite3_trace_v2(db_, ms > 0 ? SQLITE_TRACE_PROFILE : 0, ms > 0 ? &Db::OnProfile : nullptr, this);
}

int Db::OnProfile(unsigned type, void* self, void* stmt, void* nanoseconds) {
  if (type != SQLITE_TRACE_PROFILE) return 0;
  auto& slow = static_cast<Db*>(self)->slow_;
  int64_t took = *static_cast<sqlite3_int64*>(nanoseconds);
  if (took < slow.threshold_ns) return 0;
  int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  if (slow.last_line_ns != 0 && now - slow.last_line_ns < 1000000000) {
    slow.left_out++;
    return 0;
  }
  // sqlite3_sql: the text as prepared, with its placeholders (not sqlite3_expanded_sql).
  const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(stmt));
  std::string text = sql == nullptr ? "?" : std::string(sql).substr(0, 300);
  spdlog::warn(
      "storage: a statement took {} ms on the {} connection{}: {}", took / 1000000, slow.role,
      slow.left_out > 0 ? absl::StrCat(" (", slow.left_out, " more slow ones since the last line)")
                        : std::string(),
      text);
  slow.last_line_ns = now;
  slow.left_out = 0;
  return 0;
}

absl::StatusOr<sqlite3_stmt*> Db::Compile(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    NoteError(rc);
    return SqliteError(rc, db_, "prepare");
  }
  return stmt;
}

absl::StatusOr<std::unique_ptr<Stmt>> Db::Prepare(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Compile(sql));
    it = cache_.emplace(sql, stmt).first;
  }
  return std::make_unique<Stmt>(*this, it->second);
}

absl::StatusOr<std::unique_ptr<Stmt>> Db::PrepareBuilt(const std::string& sql) {
  auto it = built_.find(sql);
  if (it == built_.end()) {
    ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Compile(sql.c_str()));
    it = built_.emplace(sql, stmt).first;
  }
  return std::make_unique<Stmt>(*this, it->second);
}

absl::Status Db::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) {
    NoteError(rc);
    return SqliteError(rc, db_, "exec");
  }
  return absl::OkStatus();
}

}  // namespace refbroker::storage::internal

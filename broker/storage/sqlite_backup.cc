#include "broker/storage/sqlite_backup.h"

#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "broker/storage/internal/no_readahead.h"

namespace refbroker::storage {
namespace {

struct Closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, Closer>;

absl::StatusOr<DbPtr> OpenDb(const std::string& path, int flags) {
  // Read page by page, without readahead: the live store's pages stay in 4 KiB folios
  // (no_readahead.h), which is what the running broker writes into.
  internal::OpenFilesWithoutReadahead();
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return absl::UnavailableError(
        absl::StrCat("backup: cannot open ", path, ": ", raw ? sqlite3_errmsg(raw) : "no memory"));
  }
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

}  // namespace

absl::StatusOr<BackupOutcome> SqliteBackup(const std::string& from, const std::string& to) {
  if (std::filesystem::exists(to)) {
    return absl::AlreadyExistsError(absl::StrCat("backup: ", to, " exists already"));
  }
  if (!std::filesystem::exists(from)) {
    return absl::NotFoundError(absl::StrCat("backup: no store at ", from));
  }
  auto src = OpenDb(from, SQLITE_OPEN_READONLY);
  if (!src.ok()) return src.status();
  auto dst = OpenDb(to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!dst.ok()) return dst.status();
  sqlite3_exec(dst->get(), "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr);
  sqlite3_backup* b = sqlite3_backup_init(dst->get(), "main", src->get(), "main");
  if (b == nullptr) {
    return absl::InternalError(absl::StrCat("backup: ", sqlite3_errmsg(dst->get())));
  }
  // A few thousand pages at a time, so the broker's checkpoints are not held up for long.
  int rc;
  while ((rc = sqlite3_backup_step(b, 4096)) == SQLITE_OK || rc == SQLITE_BUSY ||
         rc == SQLITE_LOCKED) {
    if (rc != SQLITE_OK) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  BackupOutcome out;
  out.pages = sqlite3_backup_pagecount(b);
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) {
    std::filesystem::remove(to);
    return absl::InternalError(absl::StrCat("backup: ", sqlite3_errstr(rc)));
  }
  sqlite3_stmt* st = nullptr;
  std::string check;
  if (sqlite3_prepare_v2(dst->get(), "PRAGMA quick_check", -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    check = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  if (check != "ok") {
    return absl::DataLossError(absl::StrCat("backup: the copy fails quick_check: ", check));
  }
  dst->reset();
  out.bytes = static_cast<int64_t>(std::filesystem::file_size(to));
  return out;
}

}  // namespace refbroker::storage

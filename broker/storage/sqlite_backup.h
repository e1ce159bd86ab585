#pragma once
// SqliteBackup: a consistent copy of a live store with SQLite's online backup API, taken while
// the broker keeps serving (WAL readers do not block its writer). The copy is checked with
// quick_check before it is reported good. Restore = stop the broker, put the copy in place of
// the store file (and remove the old -wal and -shm files), start the broker.

#include <string>

#include "absl/status/statusor.h"

namespace refbroker::storage {

struct BackupOutcome {
  int pages = 0;
  int64_t bytes = 0;
};

// Copies the database at `from` to `to` (which must not exist yet).
absl::StatusOr<BackupOutcome> SqliteBackup(const std::string& from, const std::string& to);

}  // namespace refbroker::storage

#pragma once
// IntegrityCheck: SQLite's structural check of the store (PRAGMA quick_check) on a connection
// and a thread of its own, started once the store is open, so that the broker serves at once:
// quick_check reads every page of the file (96 s for a 4.3 GB store with a cold page cache),
// which would make a restart with a large backlog take minutes.
//
// The check is one read transaction: while it runs, the WAL cannot be checkpointed past its
// snapshot and grows with what is written meanwhile (folded in once the check ends).
//
// A check that fails reports it through `done` (the store then refuses every write with
// DATA_LOSS and reports itself unhealthy); a check still running when the object is destroyed
// is interrupted and reports nothing. Thread-safe.

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "broker/storage/internal/sqlite_db.h"

namespace refbroker::storage::internal {

// quick_check on `db`: OK, or DATA_LOSS with SQLite's first finding.
absl::Status QuickCheck(Db& db);

// The damage note, "<db>.damaged": what the check found and when, written (and synced) when it
// fails, so that the store is not served again until it is restored. Without it a restarted
// broker would serve the damaged file, and acknowledge writes into it, until the check found
// the damage again (16 s for 4.3 GB): writes that the restore from a backup then loses.
std::string DamageNotePath(const std::string& db_path);
absl::Status NoteDamage(const std::string& db_path, const absl::Status& finding);
// DATA_LOSS naming the note and what it says if there is one, else OK.
absl::Status RefuseIfNotedDamaged(const std::string& db_path);

class IntegrityCheck {
 public:
  // Called once on the check's thread: the result and the seconds it took.
  using Done = std::function<void(const absl::Status& result, double seconds)>;

  IntegrityCheck(std::unique_ptr<Db> db, Done done);
  ~IntegrityCheck();  // interrupts a check still running, then joins
  IntegrityCheck(const IntegrityCheck&) = delete;
  IntegrityCheck& operator=(const IntegrityCheck&) = delete;

  bool finished() const { return finished_.load(); }

 private:
  std::unique_ptr<Db> db_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace refbroker::storage::internal

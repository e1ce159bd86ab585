#include "broker/storage/internal/integrity_check.h"

#include <pthread.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"

namespace refbroker::storage::internal {

absl::Status QuickCheck(Db& db) {
  ASSIGN_OR_RETURN(auto st, db.Prepare("PRAGMA quick_check"));
  ASSIGN_OR_RETURN(bool row, st->Step());
  std::string first = row ? st->Text(0) : std::string("no answer");
  st->Reset();
  if (first != "ok") {
    return absl::DataLossError(absl::StrCat("storage: integrity check failed: ", first));
  }
  return absl::OkStatus();
}

IntegrityCheck::IntegrityCheck(std::unique_ptr<Db> db, Done done) : db_(std::move(db)) {
  thread_ = std::thread([this, done = std::move(done)] {
    pthread_setname_np(pthread_self(), "rb-integrity");
    auto begin = std::chrono::steady_clock::now();
    absl::Status result = QuickCheck(*db_);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    // Interrupted by the destructor: no finding to report.
    if (!stopping_.load()) done(result, seconds);
    finished_.store(true);
  });
}

IntegrityCheck::~IntegrityCheck() {
  stopping_.store(true);
  if (!finished_.load()) sqlite3_interrupt(db_->raw());
  thread_.join();
}

}  // namespace refbroker::storage::internal

#include "broker/storage/internal/integrity_check.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

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

std::string DamageNotePath(const std::string& db_path) { return db_path + ".damaged"; }

absl::Status NoteDamage(const std::string& db_path, const absl::Status& finding) {
  const std::string path = DamageNotePath(db_path);
  const std::string temp = path + ".new";
  char when[32] = "";
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  const std::string text = absl::StrCat("found ", when, ": ", finding.message(), "\n");
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("storage: cannot write ", temp, ": ", std::strerror(errno)));
  }
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                 ::fsync(fd) == 0;
  int error = errno;  // of the write or the fsync; close may change errno
  ::close(fd);
  if (written && ::rename(temp.c_str(), path.c_str()) != 0) {
    written = false;
    error = errno;
  }
  if (!written) {
    return absl::InternalError(
        absl::StrCat("storage: cannot write ", path, ": ", std::strerror(error)));
  }
  // The rename is durable once the directory is.
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

absl::Status RefuseIfNotedDamaged(const std::string& db_path) {
  const std::string path = DamageNotePath(db_path);
  // The note's presence refuses the store, readable or not; what it says is for the message.
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && !ec) return absl::OkStatus();
  std::ifstream in(path);
  std::string line = "unreadable";
  if (in) std::getline(in, line);
  return absl::DataLossError(absl::StrCat(
      "storage: ", db_path, " was found damaged (", path, ": ", line,
      ") and is not served again. Restore the latest backup (OPERATIONS.md, section 5) and move ",
      path, " aside with the damaged store"));
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

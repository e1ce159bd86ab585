#include "tests/faults/power_loss.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"

namespace refbroker::testing {

namespace {

struct Record {
  uint64_t offset = 0, length = 0, old_size = 0, saved = 0;
  std::string bytes;
};

absl::StatusOr<std::vector<Record>> ReadJournal(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<Record> records;
  for (;;) {
    uint64_t header[4];
    if (!in.read(reinterpret_cast<char*>(header), sizeof header)) break;
    Record r{header[0], header[1], header[2], header[3], std::string(header[3], '\0')};
    if (r.saved > 0 && !in.read(r.bytes.data(), static_cast<std::streamsize>(r.saved))) {
      // The broker was killed in the middle of appending this record, so its write had not
      // been made yet either (the record comes first): nothing to undo for it.
      break;
    }
    records.push_back(std::move(r));
  }
  return records;
}

}  // namespace

absl::StatusOr<DroppedWrites> DropUnsyncedWrites(const std::string& dir) {
  namespace fs = std::filesystem;
  DroppedWrites dropped;
  std::vector<fs::path> journals, shms;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.size() > 5 && name.substr(name.size() - 5) == ".undo") journals.push_back(e.path());
    if (name.size() > 4 && name.substr(name.size() - 4) == "-shm") shms.push_back(e.path());
  }
  for (const auto& journal : journals) {
    auto records = ReadJournal(journal.string());
    if (!records.ok()) return records.status();
    std::string file = journal.string().substr(0, journal.string().size() - 5);
    if (!records->empty() && fs::exists(file)) {
      int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", file));
      for (auto it = records->rbegin(); it != records->rend(); ++it) {
        if (!it->bytes.empty() &&
            pwrite(fd, it->bytes.data(), it->bytes.size(), static_cast<off_t>(it->offset)) !=
                static_cast<ssize_t>(it->bytes.size())) {
          close(fd);
          return absl::InternalError(absl::StrCat("cannot restore ", file));
        }
        dropped.writes++;
        dropped.bytes += it->length;
      }
      // The size the file had before its first unsynced write.
      int rc = ftruncate(fd, static_cast<off_t>(records->front().old_size));
      close(fd);
      if (rc != 0) return absl::InternalError(absl::StrCat("cannot truncate ", file));
    }
    fs::remove(journal);
  }
  for (const auto& shm : shms) fs::remove(shm);
  return dropped;
}

}  // namespace refbroker::testing

#include "broker/storage/internal/ack_marker.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace refbroker::storage::internal {
namespace {

constexpr char kMagic[8] = {'R', 'B', 'A', 'C', 'K', 'E', 'D', '1'};

// FNV-1a over the magic and the sequence: a torn or stale write is not taken for a note.
uint64_t Check(uint64_t sequence) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<const unsigned char*>(p)[i];
      h *= 1099511628211ULL;
    }
  };
  mix(kMagic, sizeof kMagic);
  mix(&sequence, sizeof sequence);
  return h;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AckMarker>> AckMarker::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("storage: cannot open ", path, ": ", std::strerror(errno)));
  }
  unsigned char note[24];
  std::optional<uint64_t> previous;
  if (pread(fd, note, sizeof note, 0) == static_cast<ssize_t>(sizeof note) &&
      std::memcmp(note, kMagic, sizeof kMagic) == 0) {
    uint64_t sequence, check;
    std::memcpy(&sequence, note + 8, 8);
    std::memcpy(&check, note + 16, 8);
    if (check == Check(sequence)) previous = sequence;
  }
  return std::unique_ptr<AckMarker>(new AckMarker(path, fd, previous));
}

AckMarker::AckMarker(std::string path, int fd, std::optional<uint64_t> previous)
    : path_(std::move(path)), fd_(fd), previous_(previous), noted_(previous.value_or(0)) {}

AckMarker::~AckMarker() { close(fd_); }

void AckMarker::Note(uint64_t sequence) {
  if (sequence <= noted_) return;
  unsigned char note[24];
  uint64_t check = Check(sequence);
  std::memcpy(note, kMagic, 8);
  std::memcpy(note + 8, &sequence, 8);
  std::memcpy(note + 16, &check, 8);
  if (pwrite(fd_, note, sizeof note, 0) != static_cast<ssize_t>(sizeof note)) {
    if (!warned_) {
      spdlog::warn("storage: cannot note the last acknowledged write in {}: {}", path_,
                   std::strerror(errno));
      warned_ = true;
    }
    return;
  }
  noted_ = sequence;
}

}  // namespace refbroker::storage::internal

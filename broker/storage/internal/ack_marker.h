#pragma once
// AckMarker: the store's own note of how far it has acknowledged, kept beside the database
// ("<db>.acked"), so that a store that comes back shorter is noticed instead of served.
//
// SQLite drops a damaged tail of its WAL without an error: frames whose checksums fail (a
// torn write, a flipped bit) are taken as never written, and with them the transactions they
// held. Every write a client is told is durable carries an audit entry (an ordered sequence),
// so after each commit the writer notes the newest entry's sequence here; at the next start the
// store must reach it. The note is written without fsync: it only ever lags the store (it is
// written after the commit's fsync), and a power cut that loses it loses only the check.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace refbroker::storage::internal {

class AckMarker {
 public:
  // Opens (creating) the marker file and reads what the last run noted.
  static absl::StatusOr<std::unique_ptr<AckMarker>> Open(const std::string& path);
  ~AckMarker();
  AckMarker(const AckMarker&) = delete;
  AckMarker& operator=(const AckMarker&) = delete;

  // What the previous run noted; nullopt when there is no note (a new store, or a note a
  // power cut left unreadable).
  std::optional<uint64_t> previous() const { return previous_; }
  // Notes `sequence` if it is newer than the last note. Writer thread only.
  void Note(uint64_t sequence);
  const std::string& path() const { return path_; }

 private:
  AckMarker(std::string path, int fd, std::optional<uint64_t> previous);

  std::string path_;
  int fd_;
  std::optional<uint64_t> previous_;
  uint64_t noted_ = 0;
  bool warned_ = false;
};

}  // namespace refbroker::storage::internal

#pragma once
// The test side of the power-loss model (see fault_shim.c): after the broker has been killed,
// DropUnsyncedWrites puts every journaled file in `dir` back to what it held at its last
// successful fsync, as a power cut that kept nothing unsynced would, and removes the wal-index
// (-shm), which lives in memory on a real machine and does not survive the cut.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace refbroker::testing {

struct DroppedWrites {
  uint64_t writes = 0;  // journaled writes (and truncations) undone
  uint64_t bytes = 0;   // bytes they had written
};

absl::StatusOr<DroppedWrites> DropUnsyncedWrites(const std::string& dir);

}  // namespace refbroker::testing

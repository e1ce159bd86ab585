#pragma once
// The disk's own limit, measured where the broker keeps its data: 4 KiB records appended to a
// file and made durable one at a time (write + fdatasync), as a broker with no batching would.

#include <string>

#include "absl/status/statusor.h"
#include "client/bench/bench_stats.h"

namespace refbench {

struct DiskLimit {
  double syncs_per_second = 0;
  LatencySummary latency;  // of one write + fdatasync
};

// Appends and syncs for `seconds` in a temporary file in `dir` (removed afterwards).
absl::StatusOr<DiskLimit> ProbeDisk(const std::string& dir, double seconds);

}  // namespace refbench

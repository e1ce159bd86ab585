#pragma once
// AuditBacklog: audit entries of reads answered while the disk was full. A full disk must not
// stop reads (the store refuses writes with RESOURCE_EXHAUSTED, not latched), but every read
// leaves an audit entry: those entries wait here, in memory, and are appended by Flush (every
// second, from housekeeping) as soon as space returns, with their original times. Bounded:
// past `capacity` entries reads are refused like writes. A crash while entries wait loses them
// (they are counted and logged). Thread-safe.

#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "broker/storage/store.h"

namespace refbroker::audit {

class AuditBacklog {
 public:
  explicit AuditBacklog(size_t capacity = 100000) : capacity_(capacity) {}

  // Keeps `rows` for a later Flush; RESOURCE_EXHAUSTED when the backlog is full.
  absl::Status Hold(std::vector<storage::AuditRow> rows);
  // Appends what waits; returns the store's error (the entries keep waiting) or OK.
  absl::Status Flush(storage::Store& store);
  size_t size() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::deque<storage::AuditRow> rows_;  // guarded by mu_
};

}  // namespace refbroker::audit

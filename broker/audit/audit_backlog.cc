#include "broker/audit/audit_backlog.h"

#include <spdlog/spdlog.h>

namespace refbroker::audit {

absl::Status AuditBacklog::Hold(std::vector<storage::AuditRow> rows) {
  std::lock_guard<std::mutex> lock(mu_);
  if (rows_.size() + rows.size() > capacity_) {
    return absl::ResourceExhaustedError(
        "storage: the disk is full and the audit backlog too; nothing is disclosed unrecorded");
  }
  if (rows_.empty()) spdlog::warn("audit: the disk is full; holding read entries in memory");
  for (auto& r : rows) rows_.push_back(std::move(r));
  return absl::OkStatus();
}

absl::Status AuditBacklog::Flush(storage::Store& store) {
  std::vector<storage::AuditRow> rows;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (rows_.empty()) return absl::OkStatus();
    rows.assign(rows_.begin(), rows_.end());
  }
  absl::Status s = store.AppendAudit(rows);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  rows_.erase(rows_.begin(), rows_.begin() + static_cast<std::ptrdiff_t>(rows.size()));
  spdlog::info("audit: {} entries held while the disk was full are recorded", rows.size());
  return absl::OkStatus();
}

size_t AuditBacklog::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rows_.size();
}

}  // namespace refbroker::audit

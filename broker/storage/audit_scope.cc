#include "broker/storage/audit_scope.h"

namespace refbroker::storage {
namespace {
thread_local AuditScope* current = nullptr;
}  // namespace

AuditScope::AuditScope(Store& store, AuditRow base)
    : store_(store), base_(std::move(base)), outer_(current) {
  current = this;
}

AuditScope::~AuditScope() { current = outer_; }

void AuditScope::Touch(const std::string& subject, const std::string& patient_key) {
  if (current == nullptr) return;
  if (!current->touched_.emplace(subject, patient_key).second) return;
  // A subject touched with its patient key makes the bare touch of it redundant (and the
  // reverse adds the key).
  if (!patient_key.empty() && current->touched_.count({subject, ""}) > 0) {
    for (AuditRow& row : current->pending_) {
      if (row.subject == subject && row.patient_key.empty()) {
        row.patient_key = patient_key;
        return;
      }
    }
  }
  if (patient_key.empty()) {
    for (const auto& [s, key] : current->touched_) {
      if (s == subject && !key.empty()) return;
    }
  }
  AuditRow row = current->base_;
  row.subject = subject;
  row.patient_key = patient_key;
  current->pending_.push_back(std::move(row));
}

std::vector<AuditRow> AuditScope::TakePending() {
  if (current == nullptr) return {};
  std::vector<AuditRow> rows = std::move(current->pending_);
  current->pending_.clear();
  if (rows.empty() && !current->wrote_any_) rows.push_back(current->base_);
  for (AuditRow& row : rows) row.outcome = "OK";
  current->wrote_any_ = true;
  return rows;
}

void AuditScope::Restore(std::vector<AuditRow> rows) {
  if (current == nullptr || rows.empty()) return;
  current->wrote_any_ = false;
  for (AuditRow& row : rows) current->pending_.push_back(std::move(row));
}

absl::Status AuditScope::Finish(absl::StatusCode outcome) {
  if (pending_.empty() && !wrote_any_) pending_.push_back(base_);
  if (pending_.empty()) return absl::OkStatus();
  std::vector<AuditRow> rows = std::move(pending_);
  pending_.clear();
  wrote_any_ = true;  // so the append below takes nothing from this scope
  for (AuditRow& row : rows) row.outcome = absl::StatusCodeToString(outcome);
  absl::Status s = store_.AppendAudit(rows);
  if (!s.ok()) unwritten_ = std::move(rows);
  return s;
}

}  // namespace refbroker::storage

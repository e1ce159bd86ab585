#pragma once
// AuditTrail: what auditors do with the audit entries the API layer writes (AuditScope):
// walk the hash chain and name the first broken entry, search who touched a patient's data,
// and move entries past their retention into archive files (never drop them).

#include <string>

#include "absl/status/statusor.h"
#include "broker/auth/registry.h"
#include "broker/common/clock.h"
#include "broker/storage/store.h"
#include "refbroker/v1/audit.pb.h"

namespace refbroker::audit {

class AuditTrail {
 public:
  // Archive files are written to `archive_dir` (created when needed).
  AuditTrail(storage::Store& store, const Clock& clock, std::string archive_dir)
      : store_(store), clock_(clock), archive_dir_(std::move(archive_dir)) {}

  // Auditors only. Walks every entry kept in the store from the archive anchor on.
  absl::StatusOr<refbroker::v1::VerifyAuditResponse> Verify(const auth::Principal& caller);
  // Auditors only, within their alliance (and refused, unauthenticated calls).
  absl::StatusOr<refbroker::v1::SearchAuditResponse> Search(
      const auth::Principal& caller, const refbroker::v1::SearchAuditRequest& request);
  // Archives every entry recorded before `cutoff`, in files of at most `batch` entries: each
  // file (JSON lines, one AuditEntry each, hashes included) is fsync'd before the store lets
  // its entries go. Returns how many entries were archived.
  absl::StatusOr<uint64_t> Archive(Micros cutoff, size_t batch = 10000);

 private:
  absl::StatusOr<std::string> WriteArchiveFile(const std::vector<storage::AuditRow>& rows);

  storage::Store& store_;
  const Clock& clock_;
  const std::string archive_dir_;
};

refbroker::v1::AuditEntry ToProto(const storage::AuditRow& row);

}  // namespace refbroker::audit

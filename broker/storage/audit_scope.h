#pragma once
// AuditScope: the audit entries of one request, collected while it runs on this thread.
//
// The API layer opens a scope around each call with who/where/what (one AuditRow as the base);
// the workflows name the records they touch (Touch: subject and patient key). A Store writes
// the scope's pending entries inside the transaction of the next mutating call this thread
// makes (TakePending / Restore), so a state change and its audit entry commit together and cost
// no extra fsync. Finish() appends what is still pending (reads, refusals) before the answer
// goes out. Without a scope, Touch does nothing. Not thread-safe by design: one per thread.

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "broker/storage/store.h"

namespace refbroker::storage {

class AuditScope {
 public:
  AuditScope(Store& store, AuditRow base);
  ~AuditScope();  // leaves the thread's scope; Finish() is the caller's job
  AuditScope(const AuditScope&) = delete;
  AuditScope& operator=(const AuditScope&) = delete;

  // Records that the current request touches `subject` (of `patient_key`, "" when none).
  static void Touch(const std::string& subject, const std::string& patient_key);
  // For Store implementations: the current thread's pending entries with outcome "OK" (empty
  // without a scope), removed from the scope; Restore puts them back when the write failed.
  static std::vector<AuditRow> TakePending();
  static void Restore(std::vector<AuditRow> rows);

  // Appends the entries not yet written, with `outcome` (a base entry alone when the request
  // touched nothing and wrote nothing). Returns the store's error, if any.
  absl::Status Finish(absl::StatusCode outcome);
  // After a failed Finish: the entries it could not append (empty otherwise).
  std::vector<AuditRow> TakeUnwritten() { return std::move(unwritten_); }

 private:
  Store& store_;
  AuditRow base_;
  std::vector<AuditRow> pending_;
  std::vector<AuditRow> unwritten_;
  // (subject, patient key) already written or pending: touched again, they add nothing.
  std::set<std::pair<std::string, std::string>> touched_;
  bool wrote_any_ = false;
  AuditScope* outer_;
};

}  // namespace refbroker::storage

#include "broker/storage/audit_chain.h"

#include "absl/strings/str_cat.h"
#include "broker/common/ids.h"

namespace refbroker::storage {

std::string AuditChainHash(const std::string& prev_hash, const AuditRow& row) {
  std::string input;
  auto add = [&input](const std::string& field) {
    absl::StrAppend(&input, field.size(), ":", field, ";");
  };
  add(prev_hash);
  add(std::to_string(row.seq));
  add(std::to_string(row.at));
  add(row.actor);
  add(row.alliance);
  add(row.action);
  add(row.subject);
  add(row.patient_key);
  add(row.peer);
  add(row.outcome);
  return Sha256Hex(input);
}

bool ExtendsArchivablePrefix(const AuditRow* previous, const AuditRow& row, Micros cutoff) {
  return row.at < cutoff && (previous == nullptr || row.seq == previous->seq + 1);
}

size_t ArchivablePrefix(const std::vector<AuditRow>& head, Micros cutoff) {
  size_t n = 0;
  while (n < head.size() &&
         ExtendsArchivablePrefix(n == 0 ? nullptr : &head[n - 1], head[n], cutoff)) {
    ++n;
  }
  return n;
}

}  // namespace refbroker::storage

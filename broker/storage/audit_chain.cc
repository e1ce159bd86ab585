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

}  // namespace refbroker::storage

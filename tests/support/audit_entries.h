#pragma once
// Audit entries for storage tests: one entry as a call would write it, and the check that a
// store's entries form the hash chain (storage/audit_chain.h).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker/storage/audit_chain.h"
#include "broker/storage/store.h"

namespace refbroker::testing {

inline constexpr Micros kAuditAt = 1795000000LL * 1000000;  // the storage tests' kT0

inline storage::AuditRow AuditEntry(const std::string& actor, const std::string& action,
                                    const std::string& subject = "",
                                    const std::string& patient_key = "", Micros at = kAuditAt) {
  storage::AuditRow row;
  row.at = at;
  row.actor = actor;
  row.alliance = "pingyu";
  row.action = action;
  row.subject = subject;
  row.patient_key = patient_key;
  row.peer = "ipv4:127.0.0.1:5000";
  row.outcome = "OK";
  return row;
}

// `rows` are a store's entries from the first, oldest first: numbered 1, 2, ... and each hash
// the chain hash over the one before.
inline void ExpectHashChained(const std::vector<storage::AuditRow>& rows) {
  std::string prev;
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].seq, i + 1);
    EXPECT_EQ(rows[i].prev_hash, prev) << rows[i].seq;
    EXPECT_EQ(rows[i].hash, storage::AuditChainHash(prev, rows[i])) << rows[i].seq;
    prev = rows[i].hash;
  }
}

}  // namespace refbroker::testing

#pragma once
// The audit trail's hash chain: each entry's hash covers the hash before it and every field of
// the entry, so the chain can be walked and the first altered, inserted or removed entry named.

#include <string>

#include "broker/storage/store.h"

namespace refbroker::storage {

// Lower-case hex SHA-256 over `prev_hash` and the entry's fields (seq, at, actor, alliance,
// action, subject, patient_key, peer, outcome), each length-prefixed so no two different
// entries hash the same input. `row.prev_hash` and `row.hash` are not read.
std::string AuditChainHash(const std::string& prev_hash, const AuditRow& row);

}  // namespace refbroker::storage

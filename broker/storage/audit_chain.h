#pragma once
// The audit trail's hash chain: each entry's hash covers the hash before it and every field of
// the entry, so the chain can be walked and the first altered, inserted or removed entry named.

#include <string>
#include <vector>

#include "broker/storage/store.h"

namespace refbroker::storage {

// Lower-case hex SHA-256 over `prev_hash` and the entry's fields (seq, at, actor, alliance,
// action, subject, patient_key, peer, outcome), each length-prefixed so no two different
// entries hash the same input. `row.prev_hash` and `row.hash` are not read.
std::string AuditChainHash(const std::string& prev_hash, const AuditRow& row);

// Of the chain's first entries in sequence order, how many may go to an archive: the entries
// before the first one at or after `cutoff`, and before any gap in the sequence. Only a prefix
// of the chain leaves, so an archive reads the chain's head (at most a batch) and never
// searches the log by time: with nothing old enough that search read every entry, inside the
// writer's transaction.
size_t ArchivablePrefix(const std::vector<AuditRow>& head, Micros cutoff);
// Whether `row` goes on an archivable prefix that ends with `previous` (nullptr: none yet).
bool ExtendsArchivablePrefix(const AuditRow* previous, const AuditRow& row, Micros cutoff);

}  // namespace refbroker::storage

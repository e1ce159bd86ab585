#pragma once
// The results index's compact patient key (SQLite schema v7).
//
// A patient key is "pk-" + 64 hex digits; as the first column of the results index it made each
// entry ~92 bytes, 38 to a 4 KiB leaf. Publishing inserts at a random place in that index, and
// SQLite keeps its leaves ~88% full by rebalancing a leaf with its siblings when it overflows, so
// each publish wrote ~2 leaves of it once the store was large. The index is keyed by the first
// 8 bytes of SHA-256(patient key) as an integer instead (~34-byte entries); every statement
// also compares the full patient_key on the row, so two patients whose numbers collide are
// still told apart.

#include <sqlite3.h>

#include <cstdint>
#include <string_view>

namespace refbroker::storage::internal {

int64_t PatientNo(std::string_view patient_key);

// Registers patient_no(text) -> integer on `db` (deterministic), used by the v7 migration to
// number the results stored before it.
int RegisterPatientNoFunction(sqlite3* db);

}  // namespace refbroker::storage::internal

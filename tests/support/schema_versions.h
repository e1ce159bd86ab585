#pragma once
// For tests that put a store back into an older SQLite schema (PRAGMA user_version) to check
// a migration: the SQL that undoes each later migration that such a test does not look at.

namespace refbroker::testing {

// Undoes schema v10 (the escalated referrals' index and the start-up sweep's mark).
inline constexpr char kUndoSchemaV10[] =
    "DROP INDEX referrals_escalated; DROP TABLE pending_sweeps;";

}  // namespace refbroker::testing

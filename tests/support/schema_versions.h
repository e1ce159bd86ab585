#pragma once
// For tests that put a store back into an older SQLite schema (PRAGMA user_version) to check
// a migration: the SQL that undoes each later migration such a test does not look at, newest
// first when several are undone.

namespace refbroker::testing {

// Undoes schema v11: the queue counts and their triggers.
inline constexpr char kUndoSchemaV11[] =
    "DROP TRIGGER consumer_groups_counted; DROP TRIGGER messages_counted;"
    "DROP TRIGGER messages_uncounted; DROP TRIGGER group_messages_counted;"
    "DROP TRIGGER group_messages_recounted; DROP TRIGGER group_messages_uncounted;"
    "DROP TABLE queue_counts;";

// Undoes schema v10: the escalated referrals' index and the start-up sweep's mark.
inline constexpr char kUndoSchemaV10[] =
    "DROP INDEX referrals_escalated; DROP TABLE pending_sweeps;";

}  // namespace refbroker::testing

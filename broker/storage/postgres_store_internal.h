#pragma once
// Shared by the PostgresStore's source files; not part of the store's interface.

#include <string>

#include "absl/status/status.h"
#include "broker/common/clock.h"
#include "broker/storage/group_message_state.h"
#include "broker/storage/internal/pg_conn.h"
#include "broker/storage/store.h"

namespace refbroker::storage::pg_internal {

// The per-queue advisory lock (until the transaction ends): shared by enqueues, exclusive for
// creating a group or replaying into one.
absl::Status LockQueue(internal::PgConn& c, const std::string& queue, bool exclusive);

// Appends a message (to `alliance`'s partition: the queue owner's) and fans it out to every
// existing consumer group of its queue.
absl::Status Enqueue(internal::PgConn& c, const NewMessage& m, Micros now,
                     const std::string& alliance);

}  // namespace refbroker::storage::pg_internal

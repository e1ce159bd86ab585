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

// The queue listing's two searches (Store::ListQueueStats), here so that a test can ask
// PostgreSQL for their plans. Every metrics scrape, status page and `refctl queues` runs them.
// Per queue: its messages counted from the (queue, seq) index, and the oldest one's enqueue time
// (the first by sequence). Linear in the messages retained, but an index count and one row read
// per queue, not a read of every message.
inline constexpr const char* kQueueRetainedSql =
    "WITH q AS (SELECT queue, COUNT(*) AS n, MIN(seq) AS first FROM messages GROUP BY queue) "
    "SELECT q.queue, q.n, m.enqueued_at FROM q LEFT JOIN messages m ON m.seq=q.first";
// Per group and state: the waiting (0 ready, 1 in flight) and dead (3) messages, through the
// partial indexes that hold only those, with the enqueue time of each state's first waiting
// message. Acked messages (a week of them by default) are not read: the listing used to join
// every group's rows, acked ones too, with their messages (0.4 s with 500,000 retained).
inline constexpr const char* kGroupWaitingSql =
    "WITH w AS (SELECT queue, grp, state, COUNT(*) AS n, MIN(seq) AS first FROM group_messages "
    "WHERE state<2 GROUP BY queue, grp, state UNION ALL SELECT queue, grp, 3, COUNT(*), NULL "
    "FROM group_messages WHERE state=3 GROUP BY queue, grp) "
    "SELECT w.queue, w.grp, w.state, w.n, m.enqueued_at FROM w LEFT JOIN messages m ON "
    "m.seq=w.first";

}  // namespace refbroker::storage::pg_internal

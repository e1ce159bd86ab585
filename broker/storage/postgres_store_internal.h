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

// An event's insert parameters, a referral's or a consult's ($1 the referral or consult, then
// actor, client request id, action, time, body, alliance).
template <typename Event>
internal::PgParams EventParams(const std::string& subject, const Event& e,
                               const std::string& alliance) {
  return internal::PgParams()
      .Add(subject)
      .Add(e.actor)
      .Add(e.client_request_id)
      .Add(e.action)
      .Add(e.at)
      .Bytes(e.body)
      .Add(alliance);
}

// Appends a message (to `alliance`'s partition: the queue owner's) and fans it out to every
// existing consumer group of its queue.
absl::Status Enqueue(internal::PgConn& c, const NewMessage& m, Micros now,
                     const std::string& alliance);

// A publish's and a re-test reason's duplicate checks by their unique keys (publisher or
// institution $1, client request id $2), alliance first ($3, the publisher's or institution's,
// whose partition its rows are in), and a publish's look for an unused re-test reason of the
// same institution ($1, alliance $4): one partition's index each, however many alliances share
// the database. Here so that a test can ask PostgreSQL for their plans.
extern const char kResultByRequestSql[];
extern const char kRetestByRequestSql[];
extern const char kUnusedRetestSql[];

// The queue listing's statements (Store::ListQueueStats), here so that a test can ask
// PostgreSQL for their plans. Every metrics scrape, status page and `refctl queues` runs them.
// The counts of schema v4, summed over the brokers' shards (rows that sum to 0 left out).
inline constexpr const char* kQueueCountsSql =
    "SELECT queue, grp, state, SUM(n)::bigint FROM queue_counts GROUP BY queue, grp, state "
    "HAVING SUM(n) <> 0";
// Per queue with messages, the oldest one's enqueue time: the first by sequence in the queue's
// index (one search a queue, not a pass over its messages).
inline constexpr const char* kQueueOldestSql =
    "SELECT q.queue, f.enqueued_at FROM (SELECT alliance, queue FROM queue_counts WHERE grp='' "
    "AND state=-1 GROUP BY alliance, queue HAVING SUM(n) > 0) q CROSS JOIN LATERAL (SELECT "
    "m.enqueued_at FROM messages m WHERE m.alliance=q.alliance AND m.queue=q.queue ORDER BY "
    "m.seq LIMIT 1) f";
// Per group, its oldest waiting (ready or in flight) message's enqueue time: the first of each
// priority in the pending index, found priority after priority (a search per priority present,
// not a pass over the waiting messages), and the earliest of those.
inline constexpr const char* kGroupOldestSql =
    "WITH RECURSIVE p AS (SELECT cg.alliance, cg.queue, cg.grp, f.priority, f.seq FROM "
    "consumer_groups cg CROSS JOIN LATERAL (SELECT g.priority, g.seq FROM group_messages g WHERE "
    "g.alliance=cg.alliance AND g.queue=cg.queue AND g.grp=cg.grp AND g.state<2 ORDER BY "
    "g.priority, g.seq LIMIT 1) f UNION ALL SELECT p.alliance, p.queue, p.grp, f.priority, "
    "f.seq FROM p CROSS JOIN LATERAL (SELECT g.priority, g.seq FROM group_messages g WHERE "
    "g.alliance=p.alliance AND g.queue=p.queue AND g.grp=p.grp AND g.state<2 AND "
    "g.priority>p.priority ORDER BY g.priority, g.seq LIMIT 1) f) "
    "SELECT w.queue, w.grp, m.enqueued_at FROM (SELECT alliance, queue, grp, MIN(seq) AS first "
    "FROM p GROUP BY alliance, queue, grp) w JOIN messages m ON m.alliance=w.alliance AND "
    "m.seq=w.first";

}  // namespace refbroker::storage::pg_internal

#pragma once
// QueueSummary: one queue's figures across its consumer groups, as the operator sees them
// (refctl queues, the metrics, the status page): depth is the furthest-behind group's backlog.

#include <algorithm>
#include <cstdint>

#include "broker/delivery/delivery_engine.h"
#include "broker/storage/store.h"

namespace refbroker::delivery {

struct QueueSummary {
  uint64_t depth = 0;  // messages not yet acked by every group (ready + in flight)
  uint64_t in_flight = 0;
  uint64_t dead_letters = 0;
  int64_t oldest_age_seconds = 0;  // of the oldest unacked message; 0 when none
  uint32_t consumers = 0;          // streams connected to this broker
};

inline QueueSummary Summarize(const storage::QueueStats& stats, Micros now,
                              const DeliveryEngine& engine) {
  QueueSummary s;
  s.depth = stats.unconsumed;
  Micros oldest = stats.oldest_unconsumed_at;
  for (const storage::GroupStats& g : stats.groups) {
    s.depth = std::max(s.depth, g.ready + g.in_flight);
    s.in_flight += g.in_flight;
    s.dead_letters += g.dead;
    s.consumers += engine.Consumers(stats.queue, g.group);
    if (g.oldest_enqueued_at != 0 && (oldest == 0 || g.oldest_enqueued_at < oldest)) {
      oldest = g.oldest_enqueued_at;
    }
  }
  s.oldest_age_seconds = oldest == 0 ? 0 : std::max<Micros>(0, (now - oldest) / 1000000);
  return s;
}

}  // namespace refbroker::delivery

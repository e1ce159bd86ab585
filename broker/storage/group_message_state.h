#pragma once
// The states of a message for one consumer group (group_messages.state), as both stores keep
// them: the same integers in the SQLite file and the PostgreSQL tables (broker/storage/README.md).

namespace refbroker::storage {

enum GroupMessageState : int { kReady = 0, kInFlight = 1, kAcked = 2, kDead = 3 };

}  // namespace refbroker::storage

#pragma once
// The SQLite schema, as versioned migrations (PRAGMA user_version). See README.md beside this.

namespace refbroker::storage::sqlite_schema {

// Message states in group_messages.state.
enum GroupMessageState : int { kReady = 0, kInFlight = 1, kAcked = 2, kDead = 3 };

inline constexpr const char* kMigrations[] = {
    // v1: referrals, queues, consumer groups.
    R"sql(
CREATE TABLE referrals(
  id TEXT PRIMARY KEY,
  sender TEXT NOT NULL,
  receiver TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  request_digest BLOB NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  submitted_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  body BLOB NOT NULL,
  UNIQUE(sender, client_request_id));
CREATE INDEX referrals_receiver ON referrals(receiver, submitted_at);
CREATE TABLE messages(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL,
  subject_id TEXT NOT NULL,
  payload BLOB NOT NULL,
  enqueued_at INTEGER NOT NULL);
CREATE INDEX messages_queue ON messages(queue, seq);
CREATE TABLE consumer_groups(
  queue TEXT NOT NULL,
  grp TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY(queue, grp)) WITHOUT ROWID;
CREATE TABLE group_messages(
  queue TEXT NOT NULL,
  grp TEXT NOT NULL,
  seq INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  state_at INTEGER NOT NULL,
  PRIMARY KEY(queue, grp, seq)) WITHOUT ROWID;
CREATE INDEX group_messages_pending ON group_messages(queue, grp, priority, seq) WHERE state < 2;
CREATE INDEX group_messages_dead ON group_messages(queue, grp, seq) WHERE state = 3;
CREATE INDEX group_messages_seq ON group_messages(seq);
)sql",
};

}  // namespace refbroker::storage::sqlite_schema

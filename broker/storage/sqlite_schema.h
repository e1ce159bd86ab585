#pragma once
// The SQLite schema, as versioned migrations (PRAGMA user_version). See README.md beside this.

namespace refbroker::storage::sqlite_schema {

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
    // v2: the two-way workflow: history, journeys, decision deadlines, optimistic versions.
    R"sql(
ALTER TABLE referrals ADD COLUMN direction INTEGER NOT NULL DEFAULT 1;
ALTER TABLE referrals ADD COLUMN journey_id TEXT NOT NULL DEFAULT '';
ALTER TABLE referrals ADD COLUMN alliance TEXT NOT NULL DEFAULT '';
ALTER TABLE referrals ADD COLUMN decision_due_at INTEGER;
ALTER TABLE referrals ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
UPDATE referrals SET journey_id = id WHERE journey_id = '';
CREATE INDEX referrals_sender ON referrals(sender, submitted_at);
CREATE INDEX referrals_journey ON referrals(journey_id);
CREATE INDEX referrals_alliance ON referrals(alliance, submitted_at);
CREATE INDEX referrals_due ON referrals(decision_due_at) WHERE decision_due_at IS NOT NULL;
CREATE TABLE referral_events(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  referral_id TEXT NOT NULL,
  actor TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  action INTEGER NOT NULL,
  at INTEGER NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX referral_events_referral ON referral_events(referral_id, seq);
CREATE UNIQUE INDEX referral_events_request ON referral_events(actor, client_request_id)
  WHERE client_request_id <> '';
)sql",
    // v3: result records and re-test reasons (mutual recognition).
    R"sql(
CREATE TABLE results(
  id TEXT PRIMARY KEY,
  publisher TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  request_digest BLOB NOT NULL,
  patient_key TEXT NOT NULL,
  item_code TEXT NOT NULL,
  kind INTEGER NOT NULL,
  performed_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  repeat_without_reason INTEGER NOT NULL,
  body BLOB NOT NULL,
  UNIQUE(publisher, client_request_id));
CREATE INDEX results_patient_item ON results(patient_key, item_code, performed_at);
CREATE INDEX results_received ON results(received_at);
CREATE TABLE retests(
  id TEXT PRIMARY KEY,
  institution TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  patient_key TEXT NOT NULL,
  item_code TEXT NOT NULL,
  reason INTEGER NOT NULL,
  recorded_at INTEGER NOT NULL,
  used_by_result_id TEXT NOT NULL,
  body BLOB NOT NULL,
  UNIQUE(institution, client_request_id));
CREATE INDEX retests_open ON retests(institution, patient_key, item_code, recorded_at)
  WHERE used_by_result_id = '';
CREATE INDEX retests_recorded ON retests(recorded_at);
)sql",
    // v4: teleconsultation (consults, their history, immutable reports, threads).
    R"sql(
CREATE TABLE consults(
  id TEXT PRIMARY KEY,
  requester TEXT NOT NULL,
  target TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  request_digest BLOB NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  service INTEGER NOT NULL,
  alliance TEXT NOT NULL,
  requested_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  due_at INTEGER,
  version INTEGER NOT NULL,
  body BLOB NOT NULL,
  UNIQUE(requester, client_request_id));
CREATE INDEX consults_requester ON consults(requester, requested_at);
CREATE INDEX consults_target ON consults(target, requested_at);
CREATE INDEX consults_alliance ON consults(alliance, requested_at);
CREATE INDEX consults_due ON consults(due_at) WHERE due_at IS NOT NULL;
CREATE TABLE consult_events(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  consult_id TEXT NOT NULL,
  actor TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  action INTEGER NOT NULL,
  at INTEGER NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX consult_events_consult ON consult_events(consult_id, seq);
CREATE UNIQUE INDEX consult_events_request ON consult_events(actor, client_request_id)
  WHERE client_request_id <> '';
CREATE TABLE consult_reports(
  id TEXT PRIMARY KEY,
  consult_id TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  addendum_to TEXT NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX consult_reports_consult ON consult_reports(consult_id, issued_at);
CREATE TRIGGER consult_reports_no_update BEFORE UPDATE ON consult_reports
  BEGIN SELECT RAISE(ABORT, 'consult reports are immutable'); END;
CREATE TRIGGER consult_reports_no_delete BEFORE DELETE ON consult_reports
  BEGIN SELECT RAISE(ABORT, 'consult reports are immutable'); END;
CREATE TABLE consult_messages(
  id TEXT PRIMARY KEY,
  consult_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  author TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  body BLOB NOT NULL,
  UNIQUE(consult_id, seq),
  UNIQUE(author, client_request_id));
)sql",
    // v5: the hash-chained audit trail; entries leave only through an archive mark.
    R"sql(
CREATE TABLE audit_log(
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  alliance TEXT NOT NULL,
  action TEXT NOT NULL,
  subject TEXT NOT NULL,
  patient_key TEXT NOT NULL,
  peer TEXT NOT NULL,
  outcome TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL);
CREATE INDEX audit_log_patient ON audit_log(patient_key) WHERE patient_key <> '';
CREATE INDEX audit_log_subject ON audit_log(subject) WHERE subject <> '';
CREATE INDEX audit_log_at ON audit_log(at);
CREATE TABLE audit_archives(
  upto_seq INTEGER PRIMARY KEY,
  last_hash TEXT NOT NULL,
  file TEXT NOT NULL,
  archived_at INTEGER NOT NULL);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit entries are immutable'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
  WHEN old.seq > (SELECT IFNULL(MAX(upto_seq), 0) FROM audit_archives)
  BEGIN SELECT RAISE(ABORT, 'audit entries leave only through an archive'); END;
CREATE TRIGGER audit_archives_no_update BEFORE UPDATE ON audit_archives
  BEGIN SELECT RAISE(ABORT, 'audit archive marks are immutable'); END;
CREATE TRIGGER audit_archives_no_delete BEFORE DELETE ON audit_archives
  BEGIN SELECT RAISE(ABORT, 'audit archive marks are immutable'); END;
)sql",
    // v6: what the operators' late views ask for by state: referrals waiting for a decision
    // (SUBMITTED 1, DELIVERED 2, ESCALATED 8) and open consults (REQUESTED 1, ACCEPTED 2,
    // SCHEDULED 4). Partial: a row is in them only while in those states, so they stay as small
    // as the open work is (see internal/list_query.h).
    R"sql(
CREATE INDEX referrals_undecided ON referrals(alliance, submitted_at) WHERE state IN (1, 2, 8);
CREATE INDEX consults_open ON consults(alliance, requested_at) WHERE state IN (1, 2, 4);
)sql",
    // v7: the results index by a compact patient number (internal/patient_no.h): entries of ~34
    // bytes instead of ~92, so a publish into a large store rebalances fewer leaves.
    R"sql(
ALTER TABLE results ADD COLUMN patient_no INTEGER NOT NULL DEFAULT 0;
UPDATE results SET patient_no = patient_no(patient_key);
DROP INDEX results_patient_item;
CREATE INDEX results_patient ON results(patient_no, item_code, performed_at);
)sql",
    // v8: the results index also holds each result's performing institution, so a publish
    // tells from the index alone which earlier results could be recognized and reads only
    // those rows (Store::PublishResult's PriorFilter); the others are most of them, and each
    // row is a random page of a large store.
    R"sql(
CREATE INDEX results_prior ON results(patient_no, item_code, performed_at, publisher);
DROP INDEX results_patient;
)sql",
    // v9: the audit trail's patient index by the same compact number as the results' (v7).
    // Each publish, submit and look at a patient's records adds an entry at a random place in
    // it; keyed by the ~67-byte patient key it was the largest cost of a publish into a large
    // store (recognition_bench at 1M records: 2.1 of 5.3 WAL frames per record, 16 us of 75 us
    // of writer time). The number is derived from the entry's patient key, which the chain hash
    // covers; the hash does not cover the number, so numbering the entries stored before this
    // changes no hash. The immutability trigger is lifted for that one statement, in the
    // migration's own transaction, and restored as it was.
    R"sql(
ALTER TABLE audit_log ADD COLUMN patient_no INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER audit_log_no_update;
UPDATE audit_log SET patient_no = patient_no(patient_key) WHERE patient_key <> '';
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit entries are immutable'); END;
DROP INDEX audit_log_patient;
CREATE INDEX audit_log_patient ON audit_log(patient_no) WHERE patient_key <> '';
)sql",
    // v10: the escalated referrals in an index of their own. `refctl queues` and the status
    // page count each receiver's escalated referrals; through referrals_undecided (v6) that read
    // every referral still waiting for a decision, and with a million queued undelivered it ran
    // past refctl's 15 s deadline. And the start-up sweep's mark (Store::ListAckedButUndelivered):
    // a store written before an ack committed its referral's DELIVERED transition with it is swept
    // once, at the first start that reaches this version, until the sweep finds nothing; the
    // sweep read every acked message at every start (15 s with a million queued).
    R"sql(
CREATE INDEX referrals_escalated ON referrals(alliance, submitted_at) WHERE state = 8;
CREATE TABLE pending_sweeps(name TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO pending_sweeps VALUES('acked_but_undelivered');
)sql",
    // v11: every queue's and every group's messages counted as they change (queue_counts, kept
    // by triggers in the transaction that changes them: an enqueue, lease, ack, nack, requeue,
    // replay or prune counts itself or not at all). Every metrics scrape, status page and
    // `refctl queues` lists the queues; counting the rows read every message retained, acked
    // ones too (0.5 s warm, 16 s cold with a million queued), and grew with the retention.
    // grp '' and state -1: the queue's messages; otherwise a group's rows in state 0 (ready),
    // 1 (in flight) or 3 (dead), made with the group so that the triggers only update them.
    // Acked rows (2) have no count row: their updates find nothing. One trigger a change (each
    // firing runs a sub-program: two triggers with WHEN clauses cost twice as much).
    R"sql(
CREATE TABLE queue_counts(
  queue TEXT NOT NULL,
  grp TEXT NOT NULL,
  state INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY(queue, grp, state)) WITHOUT ROWID;
INSERT INTO queue_counts SELECT queue, '', -1, COUNT(*) FROM messages GROUP BY queue;
INSERT INTO queue_counts SELECT queue, grp, state, COUNT(*) FROM group_messages
  WHERE state IN (0, 1, 3) GROUP BY queue, grp, state;
INSERT OR IGNORE INTO queue_counts SELECT queue, grp, s.column1, 0 FROM consumer_groups,
  (VALUES (0), (1), (3)) s;
CREATE TRIGGER consumer_groups_counted AFTER INSERT ON consumer_groups BEGIN
  INSERT OR IGNORE INTO queue_counts VALUES
    (new.queue, new.grp, 0, 0), (new.queue, new.grp, 1, 0), (new.queue, new.grp, 3, 0);
END;
CREATE TRIGGER messages_counted AFTER INSERT ON messages BEGIN
  INSERT INTO queue_counts VALUES(new.queue, '', -1, 1) ON CONFLICT DO UPDATE SET n=n+1;
END;
CREATE TRIGGER messages_uncounted AFTER DELETE ON messages BEGIN
  UPDATE queue_counts SET n=n-1 WHERE queue=old.queue AND grp='' AND state=-1;
END;
CREATE TRIGGER group_messages_counted AFTER INSERT ON group_messages BEGIN
  UPDATE queue_counts SET n=n+1 WHERE queue=new.queue AND grp=new.grp AND state=new.state;
END;
CREATE TRIGGER group_messages_recounted AFTER UPDATE OF state ON group_messages
  WHEN old.state<>new.state BEGIN
  UPDATE queue_counts SET n=n-1 WHERE queue=old.queue AND grp=old.grp AND state=old.state;
  UPDATE queue_counts SET n=n+1 WHERE queue=new.queue AND grp=new.grp AND state=new.state;
END;
CREATE TRIGGER group_messages_uncounted AFTER DELETE ON group_messages BEGIN
  UPDATE queue_counts SET n=n-1 WHERE queue=old.queue AND grp=old.grp AND state=old.state;
END;
)sql",
};

}  // namespace refbroker::storage::sqlite_schema

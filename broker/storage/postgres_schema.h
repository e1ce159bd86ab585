#pragma once
// The PostgreSQL schema, as versioned migrations (table schema_migrations), applied by the
// broker at start under a transaction-scoped advisory lock, so that two brokers starting
// together apply each migration once. The tables mirror the SQLite schema (sqlite_schema.h,
// README.md beside this); differences: integers are BIGINT, bytes are BYTEA, ids sort bytewise
// (COLLATE "C", as SQLite compares them), message sequences come from a BIGSERIAL, the tables
// are partitioned by alliance (below), and the audit chain's head is one row (audit_head) that a
// writer locks for the few statements that append to the chain at the end of its batch, so that
// entries of several brokers form one chain.

namespace refbroker::storage::postgres_schema {

// The tables partitioned by alliance (LIST on their `alliance` column): the broker creates a
// partition per alliance of its registry at start (<table>__<alliance>), and rows of anything
// else land in <table>__default. Primary and unique keys lead with the alliance, as PostgreSQL
// requires of a partitioned table; every key they had is within one alliance anyway (an
// institution belongs to one). An alliance's rows can so be detached and moved to another
// database as whole tables (OPERATIONS.md). The audit trail is not partitioned: it is one hash
// chain for the whole database.
inline constexpr const char* kPartitioned[] = {
    "referrals",      "referral_events", "messages",        "consumer_groups",
    "group_messages", "results",         "retests",         "consults",
    "consult_events", "consult_reports", "consult_messages"};

inline constexpr const char* kMigrations[] = {
    // v1: the whole schema of SQLite's v1..v5, partitioned by alliance.
    R"sql(
CREATE TABLE referrals(
  alliance TEXT NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  sender TEXT NOT NULL,
  receiver TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  request_digest BYTEA NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  submitted_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  body BYTEA NOT NULL,
  direction INTEGER NOT NULL,
  journey_id TEXT NOT NULL,
  decision_due_at BIGINT,
  version BIGINT NOT NULL,
  PRIMARY KEY(alliance, id),
  UNIQUE(alliance, sender, client_request_id)) PARTITION BY LIST (alliance);
CREATE INDEX referrals_id ON referrals(id);
CREATE INDEX referrals_request ON referrals(sender, client_request_id);
CREATE INDEX referrals_receiver ON referrals(receiver, submitted_at);
CREATE INDEX referrals_sender ON referrals(sender, submitted_at);
CREATE INDEX referrals_journey ON referrals(journey_id);
CREATE INDEX referrals_alliance ON referrals(alliance, submitted_at);
CREATE INDEX referrals_due ON referrals(decision_due_at) WHERE decision_due_at IS NOT NULL;
CREATE TABLE referral_events(
  alliance TEXT NOT NULL,
  seq BIGSERIAL,
  referral_id TEXT NOT NULL,
  actor TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  action INTEGER NOT NULL,
  at BIGINT NOT NULL,
  body BYTEA NOT NULL,
  PRIMARY KEY(alliance, seq)) PARTITION BY LIST (alliance);
CREATE INDEX referral_events_referral ON referral_events(referral_id, seq);
CREATE UNIQUE INDEX referral_events_unique_request
  ON referral_events(alliance, actor, client_request_id) WHERE client_request_id <> '';
CREATE INDEX referral_events_request ON referral_events(actor, client_request_id)
  WHERE client_request_id <> '';

CREATE TABLE messages(
  alliance TEXT NOT NULL,
  seq BIGSERIAL,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL,
  subject_id TEXT NOT NULL,
  payload BYTEA NOT NULL,
  enqueued_at BIGINT NOT NULL,
  PRIMARY KEY(alliance, seq)) PARTITION BY LIST (alliance);
CREATE INDEX messages_seq ON messages(seq);
CREATE INDEX messages_queue ON messages(queue, seq);
CREATE TABLE consumer_groups(
  alliance TEXT NOT NULL,
  queue TEXT NOT NULL,
  grp TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY(alliance, queue, grp)) PARTITION BY LIST (alliance);
CREATE TABLE group_messages(
  alliance TEXT NOT NULL,
  queue TEXT NOT NULL,
  grp TEXT NOT NULL,
  seq BIGINT NOT NULL,
  priority INTEGER NOT NULL,
  state INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  visible_at BIGINT NOT NULL,
  last_error TEXT NOT NULL,
  state_at BIGINT NOT NULL,
  PRIMARY KEY(alliance, queue, grp, seq)) PARTITION BY LIST (alliance);
CREATE INDEX group_messages_key ON group_messages(queue, grp, seq);
CREATE INDEX group_messages_pending ON group_messages(queue, grp, priority, seq) WHERE state < 2;
CREATE INDEX group_messages_dead ON group_messages(queue, grp, seq) WHERE state = 3;
CREATE INDEX group_messages_seq ON group_messages(seq);

CREATE TABLE results(
  alliance TEXT NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  publisher TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  request_digest BYTEA NOT NULL,
  patient_key TEXT NOT NULL,
  item_code TEXT NOT NULL,
  kind INTEGER NOT NULL,
  performed_at BIGINT NOT NULL,
  received_at BIGINT NOT NULL,
  repeat_without_reason INTEGER NOT NULL,
  body BYTEA NOT NULL,
  PRIMARY KEY(alliance, id),
  UNIQUE(alliance, publisher, client_request_id)) PARTITION BY LIST (alliance);
CREATE INDEX results_id ON results(id);
CREATE INDEX results_request ON results(publisher, client_request_id);
CREATE INDEX results_patient_item ON results(patient_key, item_code, performed_at);
CREATE INDEX results_received ON results(received_at);
CREATE TABLE retests(
  alliance TEXT NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  institution TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  patient_key TEXT NOT NULL,
  item_code TEXT NOT NULL,
  reason INTEGER NOT NULL,
  recorded_at BIGINT NOT NULL,
  used_by_result_id TEXT NOT NULL,
  body BYTEA NOT NULL,
  PRIMARY KEY(alliance, id),
  UNIQUE(alliance, institution, client_request_id)) PARTITION BY LIST (alliance);
CREATE INDEX retests_id ON retests(id);
CREATE INDEX retests_request ON retests(institution, client_request_id);
CREATE INDEX retests_open ON retests(institution, patient_key, item_code, recorded_at)
  WHERE used_by_result_id = '';
CREATE INDEX retests_recorded ON retests(recorded_at);

CREATE TABLE consults(
  alliance TEXT NOT NULL,
  id TEXT COLLATE "C" NOT NULL,
  requester TEXT NOT NULL,
  target TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  request_digest BYTEA NOT NULL,
  state INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  service INTEGER NOT NULL,
  requested_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  due_at BIGINT,
  version BIGINT NOT NULL,
  body BYTEA NOT NULL,
  PRIMARY KEY(alliance, id),
  UNIQUE(alliance, requester, client_request_id)) PARTITION BY LIST (alliance);
CREATE INDEX consults_id ON consults(id);
CREATE INDEX consults_request ON consults(requester, client_request_id);
CREATE INDEX consults_requester ON consults(requester, requested_at);
CREATE INDEX consults_target ON consults(target, requested_at);
CREATE INDEX consults_alliance ON consults(alliance, requested_at);
CREATE INDEX consults_due ON consults(due_at) WHERE due_at IS NOT NULL;
CREATE TABLE consult_events(
  alliance TEXT NOT NULL,
  seq BIGSERIAL,
  consult_id TEXT NOT NULL,
  actor TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  action INTEGER NOT NULL,
  at BIGINT NOT NULL,
  body BYTEA NOT NULL,
  PRIMARY KEY(alliance, seq)) PARTITION BY LIST (alliance);
CREATE INDEX consult_events_consult ON consult_events(consult_id, seq);
CREATE UNIQUE INDEX consult_events_unique_request
  ON consult_events(alliance, actor, client_request_id) WHERE client_request_id <> '';
CREATE INDEX consult_events_request ON consult_events(actor, client_request_id)
  WHERE client_request_id <> '';
CREATE TABLE consult_reports(
  alliance TEXT NOT NULL,
  ord BIGSERIAL,
  id TEXT NOT NULL,
  consult_id TEXT NOT NULL,
  issued_at BIGINT NOT NULL,
  sha256 TEXT NOT NULL,
  addendum_to TEXT NOT NULL,
  body BYTEA NOT NULL,
  PRIMARY KEY(alliance, id)) PARTITION BY LIST (alliance);
CREATE INDEX consult_reports_id ON consult_reports(id);
CREATE INDEX consult_reports_consult ON consult_reports(consult_id, issued_at);
CREATE TABLE consult_messages(
  alliance TEXT NOT NULL,
  id TEXT NOT NULL,
  consult_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  author TEXT NOT NULL,
  client_request_id TEXT NOT NULL,
  at BIGINT NOT NULL,
  body BYTEA NOT NULL,
  PRIMARY KEY(alliance, id),
  UNIQUE(alliance, consult_id, seq),
  UNIQUE(alliance, author, client_request_id)) PARTITION BY LIST (alliance);
CREATE INDEX consult_messages_consult ON consult_messages(consult_id, seq);
CREATE INDEX consult_messages_request ON consult_messages(author, client_request_id);

CREATE TABLE audit_log(
  seq BIGINT PRIMARY KEY,
  at BIGINT NOT NULL,
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
  upto_seq BIGINT PRIMARY KEY,
  last_hash TEXT NOT NULL,
  file TEXT NOT NULL,
  archived_at BIGINT NOT NULL);
CREATE TABLE audit_head(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL);
INSERT INTO audit_head VALUES (1, 0, '');

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $$;
CREATE FUNCTION refuse_unarchived_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF old.seq > (SELECT COALESCE(MAX(upto_seq), 0) FROM audit_archives) THEN
    RAISE EXCEPTION 'audit entries leave only through an archive';
  END IF;
  RETURN old;
END $$;
CREATE TRIGGER consult_reports_no_change BEFORE UPDATE OR DELETE ON consult_reports
  FOR EACH ROW EXECUTE FUNCTION refuse_change('consult reports are immutable');
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION refuse_change('audit entries are immutable');
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION refuse_unarchived_delete();
CREATE TRIGGER audit_archives_no_change BEFORE UPDATE OR DELETE ON audit_archives
  FOR EACH ROW EXECUTE FUNCTION refuse_change('audit archive marks are immutable');
)sql",
    // v2: the operators' late views by state, as SQLite's v6: undecided referrals, open consults.
    R"sql(
CREATE INDEX referrals_undecided ON referrals(alliance, submitted_at) WHERE state IN (1, 2, 8);
CREATE INDEX consults_open ON consults(alliance, requested_at) WHERE state IN (1, 2, 4);
)sql",
    // v3: as SQLite's v10: the escalated referrals apart, and the start-up sweep's mark.
    R"sql(
CREATE INDEX referrals_escalated ON referrals(alliance, submitted_at) WHERE state = 8;
CREATE TABLE pending_sweeps(name TEXT PRIMARY KEY);
INSERT INTO pending_sweeps VALUES('acked_but_undelivered');
)sql",
    // v4: as SQLite's v11: every queue's and every group's messages counted as they change, so
    // that the queue listing (every metrics scrape, status page and `refctl queues`) reads
    // counts, not messages: it counted every retained message (~70 ms with 500,000; a
    // province's week of retention is hundreds of millions). Rows as SQLite's: grp '' and state
    // -1 for the queue's messages, else a group's rows in state 0, 1 or 3 (acked rows are not
    // counted), each with the alliance of the queue's partition. Statement triggers add what a
    // statement changed, read from its transition tables, in its transaction: one count row
    // updated per statement and key, however many rows the statement changes (row triggers took
    // 42 s for one INSERT of 100,000 messages, every update of the same row in one transaction
    // walking the versions before it; these 0.5 s). Each broker's writer adds to rows of its own
    // `shard` (count_shard(): claimed with a session advisory lock when it connects,
    // PostgresStore::Open), so brokers never wait on each other's counts; the listing sums the
    // shards. In psql, 20,000 enqueues with their leases and acks, 20 to a commit: 1.2-1.4 s
    // without counts, 2.9-3.1 s with these (~85 us a referral; through the broker ~150 us of
    // the server's statement time a referral, broker/storage/README.md). Not partitioned:
    // partitioned by alliance, the counts cost a third more (3.1 s against 2.3-2.5 s in runs
    // alternated with them). A statement on a partition itself (not the partitioned table), or a
    // partition detached or attached, changes no count: recount_queues() counts everything
    // again (OPERATIONS.md), as this migration does.
    R"sql(
CREATE TABLE queue_counts(
  alliance TEXT NOT NULL,
  queue TEXT NOT NULL,
  grp TEXT NOT NULL,
  state INTEGER NOT NULL,
  shard INTEGER NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY(alliance, queue, grp, state, shard));
CREATE FUNCTION count_shard() RETURNS INTEGER LANGUAGE sql STABLE AS $$
  SELECT COALESCE(NULLIF(current_setting('refbroker.count_shard', true), ''), '0')::integer $$;
CREATE FUNCTION count_messages() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$ BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO queue_counts AS c SELECT alliance, queue, '', -1, count_shard(), COUNT(*)
      FROM new_rows GROUP BY alliance, queue
      ON CONFLICT (alliance, queue, grp, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
  ELSE
    INSERT INTO queue_counts AS c SELECT alliance, queue, '', -1, count_shard(), -COUNT(*)
      FROM old_rows GROUP BY alliance, queue
      ON CONFLICT (alliance, queue, grp, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER messages_counted AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION count_messages();
CREATE TRIGGER messages_uncounted AFTER DELETE ON messages REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION count_messages();
CREATE FUNCTION count_group_messages() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$ BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO queue_counts AS c SELECT alliance, queue, grp, state, count_shard(), COUNT(*)
      FROM new_rows WHERE state <> 2 GROUP BY alliance, queue, grp, state
      ON CONFLICT (alliance, queue, grp, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO queue_counts AS c SELECT alliance, queue, grp, state, count_shard(), -COUNT(*)
      FROM old_rows WHERE state <> 2 GROUP BY alliance, queue, grp, state
      ON CONFLICT (alliance, queue, grp, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
  ELSE
    INSERT INTO queue_counts AS c SELECT alliance, queue, grp, state, count_shard(), SUM(d)
      FROM (SELECT alliance, queue, grp, state, -1 AS d FROM old_rows WHERE state <> 2
            UNION ALL SELECT alliance, queue, grp, state, 1 FROM new_rows WHERE state <> 2) x
      GROUP BY alliance, queue, grp, state HAVING SUM(d) <> 0
      ON CONFLICT (alliance, queue, grp, state, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER group_messages_counted AFTER INSERT ON group_messages
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_group_messages();
CREATE TRIGGER group_messages_recounted AFTER UPDATE ON group_messages
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION count_group_messages();
CREATE TRIGGER group_messages_uncounted AFTER DELETE ON group_messages
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_group_messages();
CREATE FUNCTION recount_queues() RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$ BEGIN
  LOCK TABLE messages, group_messages IN SHARE MODE;
  DELETE FROM queue_counts;
  INSERT INTO queue_counts SELECT alliance, queue, '', -1, 0, COUNT(*) FROM messages
    GROUP BY alliance, queue;
  INSERT INTO queue_counts SELECT alliance, queue, grp, state, 0, COUNT(*) FROM group_messages
    WHERE state <> 2 GROUP BY alliance, queue, grp, state;
END $$;
SELECT recount_queues();
)sql",
    // v5: the indexes of the duplicate checks by (sender, client_request_id) and (requester,
    // client_request_id) are gone: a submit's and a consult's checks read their unique keys,
    // alliance first (one partition's index), and nothing else reads these. Each was written at
    // every insert and at every update of the row that is not HOT (a referral's state changes
    // several times).
    R"sql(
DROP INDEX IF EXISTS referrals_request;
DROP INDEX IF EXISTS consults_request;
)sql",
    // v6: the same for results and re-test reasons: a publish's and a re-test reason's checks
    // read their unique keys, alliance first, and nothing else reads (publisher,
    // client_request_id) or (institution, client_request_id).
    R"sql(
DROP INDEX IF EXISTS results_request;
DROP INDEX IF EXISTS retests_request;
)sql",
};

}  // namespace refbroker::storage::postgres_schema

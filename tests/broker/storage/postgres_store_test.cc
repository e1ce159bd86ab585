// What only the PostgreSQL store has to show, on the throw-away test cluster: several stores on
// one schema (as several brokers would have) never lease one message twice and never lose one to
// a consumer group created meanwhile; two brokers migrating at once; a lost connection is
// UNAVAILABLE, never an acknowledgement, and the next call reconnects; audit entries and reports
// are refused to SQL.

#include "broker/storage/postgres_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/str_replace.h"
#include "broker/storage/internal/list_query.h"
#include "broker/storage/internal/pg_conn.h"
#include "broker/storage/internal/pg_writer.h"
#include "broker/storage/postgres_schema.h"
#include "broker/storage/postgres_store_internal.h"
#include "tests/support/pg_cluster.h"

namespace refbroker::storage {
namespace {

constexpr Micros kT0 = 1795000000LL * 1000000;
constexpr Micros kSecond = 1000000;
const std::string kQueue = "12411723417580001B/referrals";

std::string Conninfo() { return refbroker::testing::TestClusterConninfo(); }

// Runs SQL on the cluster outside any store; returns the first value of the first row ("" if
// none), or "ERROR: ..." .
std::string Sql(const std::string& sql) {
  PGconn* c = PQconnectdb(Conninfo().c_str());
  std::string out;
  PGresult* r = PQexec(c, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    out = std::string("ERROR: ") + PQresultErrorMessage(r);
  } else if (PQntuples(r) > 0) {
    out = PQgetvalue(r, 0, 0);
  }
  PQclear(r);
  PQfinish(c);
  return out;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(Conninfo().empty()) << "no test cluster (" REFBROKER_PG_STATE ")";
    schema_ = "ps_" + std::to_string(getpid()) + "_" +
              std::to_string(std::hash<std::string>()(
                                 ::testing::UnitTest::GetInstance()->current_test_info()->name()) %
                             1000000007);
    (void)PostgresStore::DropSchema(Conninfo(), schema_);
  }
  void TearDown() override { (void)PostgresStore::DropSchema(Conninfo(), schema_); }

  std::unique_ptr<PostgresStore> Open() {
    PostgresOptions o;
    o.conninfo = Conninfo();
    o.schema = schema_;
    auto s = PostgresStore::Open(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // A pingyu clinic's referral to its lead hospital.
  static ReferralRecord Referral(const std::string& id) {
    ReferralRecord r;
    r.id = id;
    r.sender = "124117234175811018";
    r.receiver = "12411723417580001B";
    r.client_request_id = "req-" + id;
    r.request_digest = "d-" + id;
    r.state = 1;
    r.submitted_at = kT0;
    r.updated_at = kT0;
    r.body = "body";
    r.journey_id = id;
    r.alliance = "pingyu";
    return r;
  }

  // A result of patient pk-1's LOINC:2345-7 (request id "req-" + id).
  static ResultRow Result(const std::string& id, const std::string& publisher,
                          Micros performed_at) {
    ResultRow r;
    r.id = id;
    r.publisher = publisher;
    r.client_request_id = "req-" + id;
    r.request_digest = "d-" + id;
    r.patient_key = "pk-1";
    r.item_code = "LOINC:2345-7";
    r.kind = 1;
    r.performed_at = performed_at;
    r.received_at = kT0;
    r.body = "b";
    return r;
  }

  // A lease for group "his" of kQueue at kT0.
  static LeaseRequest HisLease(size_t max_messages, Micros lease_until) {
    LeaseRequest req;
    req.queue = kQueue;
    req.group = "his";
    req.max_messages = max_messages;
    req.now = kT0;
    req.lease_until = lease_until;
    return req;
  }

  static absl::Status Submit(Store& store, const std::string& id) {
    ReferralRecord r = Referral(id);
    ReferralEventRecord e{id, "", "", 1, kT0, "e"};
    return store.SubmitReferral(r, e, {NewMessage{kQueue, 3, id, "payload"}}).status();
  }

  std::string schema_;
};

TEST_F(PostgresStoreTest, TwoBrokersStartingTogetherApplyEachMigrationOnce) {
  std::unique_ptr<PostgresStore> a, b;
  std::thread ta([&] { a = Open(); });
  std::thread tb([&] { b = Open(); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a && b);
  // Each migration once: one row per migration, not two.
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM " + schema_ + ".schema_migrations"),
            std::to_string(std::size(postgres_schema::kMigrations)));
  ASSERT_TRUE(Submit(*a, "ref-1").ok());
  EXPECT_TRUE(b->GetReferral("ref-1").ok()) << "both serve the one database";
}

TEST_F(PostgresStoreTest, TwoStoresOnOneSchemaNeverLeaseOneMessageTwice) {
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->EnsureGroup(kQueue, "his", kT0).ok());
  constexpr int kMessages = 300;
  for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(Submit(*a, "ref-" + std::to_string(i)).ok());
  std::mutex mu;
  std::multiset<uint64_t> leased;
  std::atomic<int> errors{0};
  auto consume = [&](Store& store) {
    for (;;) {
      // Nothing expires during the test.
      auto r = store.Lease(HisLease(7, kT0 + 600 * kSecond));
      if (!r.ok()) {
        errors++;
        return;
      }
      if (r->messages.empty()) return;
      std::vector<uint64_t> seqs;
      for (const auto& m : r->messages) seqs.push_back(m.sequence);
      {
        std::lock_guard<std::mutex> lock(mu);
        leased.insert(seqs.begin(), seqs.end());
      }
      if (!store.AckBatch(kQueue, "his", seqs, kT0, nullptr).ok()) errors++;
    }
  };
  std::vector<std::thread> consumers;
  for (int i = 0; i < 4; ++i) consumers.emplace_back(consume, std::ref(i % 2 ? *a : *b));
  for (auto& t : consumers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(leased.size(), static_cast<size_t>(kMessages));
  std::set<uint64_t> distinct(leased.begin(), leased.end());
  EXPECT_EQ(distinct.size(), leased.size()) << "a message was leased twice";
  auto stats = b->ListQueueStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->at(0).groups.at(0).ready, 0u);
  EXPECT_EQ(stats->at(0).groups.at(0).in_flight, 0u);
}

TEST_F(PostgresStoreTest, AGroupCreatedOnOneBrokerMissesNothingEnqueuedOnAnotherMeanwhile) {
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a && b);
  constexpr int kMessages = 200;
  std::atomic<int> submitted{0};
  std::thread producer([&] {
    for (int i = 0; i < kMessages; ++i) {
      if (Submit(*a, "ref-" + std::to_string(i)).ok()) submitted++;
    }
  });
  // Groups appear while the producer runs: each must hold every message, earlier or later.
  for (int g = 0; g < 5; ++g) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(b->EnsureGroup(kQueue, "grp-" + std::to_string(g), kT0).ok());
  }
  producer.join();
  ASSERT_EQ(submitted.load(), kMessages);
  auto stats = a->ListQueueStats();
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->at(0).groups.size(), 5u);
  for (const GroupStats& g : stats->at(0).groups) {
    EXPECT_EQ(g.ready, static_cast<uint64_t>(kMessages)) << g.group;
  }
}

TEST_F(PostgresStoreTest,
       ALostConnectionIsUnavailableNeverAnAcknowledgementAndTheNextCallReconnects) {
  auto store = Open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(Submit(*store, "before").ok());
  // The database ends every session of the store (as a restart or a failover would).
  EXPECT_EQ(Sql("SELECT COUNT(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity WHERE "
                "application_name='refbroker/" +
                schema_ + "'"),
            "t");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  absl::Status during = Submit(*store, "during");
  // Either refused as UNAVAILABLE (not stored), or stored and acknowledged: never acknowledged
  // and lost.
  if (!during.ok()) {
    EXPECT_TRUE(absl::IsUnavailable(during)) << during;
  }
  ASSERT_TRUE(Submit(*store, "after").ok()) << "the writer reconnects by itself";
  EXPECT_TRUE(store->GetReferral("before").ok()) << "reads reconnect too";
  EXPECT_TRUE(store->GetReferral("after").ok());
  EXPECT_EQ(store->GetReferral("during").ok(), during.ok());
  EXPECT_TRUE(store->Health().ok());
}

TEST_F(PostgresStoreTest, SqlCannotChangeOrDeleteAuditEntriesOrReports) {
  auto store = Open();
  ASSERT_TRUE(store);
  AuditRow row;
  row.at = kT0;
  row.actor = "a";
  row.action = "GetReferral";
  row.outcome = "OK";
  ASSERT_TRUE(store->AppendAudit({row}).ok());
  EXPECT_NE(Sql("UPDATE " + schema_ + ".audit_log SET actor='x'").rfind("ERROR", 0),
            std::string::npos);
  EXPECT_NE(Sql("DELETE FROM " + schema_ + ".audit_log").rfind("ERROR", 0), std::string::npos);
  EXPECT_EQ(Sql("SELECT actor FROM " + schema_ + ".audit_log"), "a");
  ASSERT_EQ(Sql("INSERT INTO " + schema_ +
                ".consult_reports(alliance, id, consult_id, issued_at, sha256, addendum_to, body) "
                "VALUES ('', 'rep-1', 'con-1', 1, 'x', '', 'b')"),
            "");
  EXPECT_NE(Sql("UPDATE " + schema_ + ".consult_reports SET body=''").rfind("ERROR", 0),
            std::string::npos);
  EXPECT_NE(Sql("DELETE FROM " + schema_ + ".consult_reports").rfind("ERROR", 0),
            std::string::npos);
}

TEST_F(PostgresStoreTest, RowsLiveInTheirAllianceSPartitionAndAnAllianceCanBeDetached) {
  PostgresOptions o;
  o.conninfo = Conninfo();
  o.schema = schema_;
  o.alliances = {"pingyu", "xincai", "bad name"};
  o.alliance_of = [](const std::string& code) -> std::string {
    if (code == "124117234175811018" || code == "12411723417580001B") return "pingyu";
    if (code == "12411729MB1234567X" || code == "12411729MB7654321Y") return "xincai";
    return "";
  };
  auto opened = PostgresStore::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  auto store = std::move(*opened);
  ASSERT_TRUE(Submit(*store, "ref-p").ok());  // pingyu clinic to pingyu hospital
  ReferralRecord x = Referral("ref-x");
  x.sender = "12411729MB1234567X";
  x.receiver = "12411729MB7654321Y";
  x.alliance = "xincai";
  ASSERT_TRUE(store
                  ->SubmitReferral(x, ReferralEventRecord{"ref-x", "", "", 1, kT0, "e"},
                                   {NewMessage{"12411729MB7654321Y/referrals", 3, "ref-x", "p"}})
                  .ok());
  auto where = [&](const std::string& table, const std::string& cond) {
    return Sql("SELECT tableoid::regclass::text FROM " + schema_ + "." + table + " WHERE " + cond);
  };
  EXPECT_EQ(where("referrals", "id='ref-p'"), schema_ + ".referrals__pingyu");
  EXPECT_EQ(where("referrals", "id='ref-x'"), schema_ + ".referrals__xincai");
  EXPECT_EQ(where("referral_events", "referral_id='ref-x'"), schema_ + ".referral_events__xincai");
  EXPECT_EQ(where("messages", "subject_id='ref-x'"), schema_ + ".messages__xincai");
  EXPECT_EQ(where("messages", "subject_id='ref-p'"), schema_ + ".messages__pingyu");
  EXPECT_EQ(Sql("SELECT to_regclass('" + schema_ + ".referrals__default') IS NOT NULL"), "t");
  // The operator moves xincai to another database: its partitions are detached (then dumped
  // and attached there). Pingyu is served as before; xincai's rows are gone from this one.
  for (const char* t :
       {"referrals", "referral_events", "messages", "consumer_groups", "group_messages", "results",
        "retests", "consults", "consult_events", "consult_reports", "consult_messages"}) {
    ASSERT_EQ(Sql("ALTER TABLE " + schema_ + "." + t + " DETACH PARTITION " + schema_ + "." + t +
                  "__xincai"),
              "")
        << t;
  }
  EXPECT_TRUE(store->GetReferral("ref-p").ok());
  EXPECT_TRUE(absl::IsNotFound(store->GetReferral("ref-x").status()));
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM " + schema_ + ".referrals__xincai"), "1");
  ASSERT_TRUE(store->EnsureGroup(kQueue, "his", kT0).ok());
  auto leased = store->Lease(HisLease(10, kT0 + kSecond));
  ASSERT_TRUE(leased.ok()) << leased.status();
  ASSERT_EQ(leased->messages.size(), 1u);
  EXPECT_EQ(leased->messages[0].subject_id, "ref-p");
  // Attached again (as the receiving database would), it is served again.
  ASSERT_EQ(Sql("ALTER TABLE " + schema_ + ".referrals ATTACH PARTITION " + schema_ +
                ".referrals__xincai FOR VALUES IN ('xincai')"),
            "");
  EXPECT_TRUE(store->GetReferral("ref-x").ok());
}

TEST_F(PostgresStoreTest, ConcurrentWritesShareTransactionsAndCommits) {
  auto store = Open();
  ASSERT_TRUE(store);
  constexpr int kThreads = 16, kEach = 25;
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!Submit(*store, "ref-" + std::to_string(t) + "-" + std::to_string(i)).ok()) failed++;
      }
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(failed.load(), 0);
  std::printf("postgres group commit: %llu writes in %llu commits\n",
              static_cast<unsigned long long>(store->writes()),
              static_cast<unsigned long long>(store->commits()));
  EXPECT_EQ(store->writes(), static_cast<uint64_t>(kThreads * kEach));
  // Sixteen callers at once: most commits carry several of them.
  EXPECT_LT(store->commits() * 2, store->writes());
}

// Shared buffers a statement touches, hit or read, from its EXPLAIN (ANALYZE, BUFFERS): the
// top node's counts, which include every node below it.
long BuffersTouched(const std::string& schema, const std::string& sql) {
  std::string plan =
      Sql("SET search_path=" + schema + "; EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql);
  long total = 0;
  for (const char* what : {"Shared Hit Blocks", "Shared Read Blocks"}) {
    std::smatch m;
    std::regex number(std::string("\"") + what + "\": ([0-9]+)");
    if (!std::regex_search(plan, m, number)) return -1;
    total += std::stol(m[1]);
  }
  return total;
}

// Every metrics scrape, status page and `refctl queues` lists the queues. It reads the counts
// schema v4's triggers keep and one search per queue and group for the oldest waiting message,
// however many messages are retained (a week of them by default): the statements it replaced
// counted every message and every waiting group row.
TEST_F(PostgresStoreTest, TheQueueListingReadsCountsNotMessages) {
  auto store = Open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureGroup(kQueue, "his", kT0).ok());
  // 20,000 messages the group has acked, then 3 ready and 1 in flight (the last), written as
  // rows through the partitioned tables: the triggers count them.
  ASSERT_EQ(Sql("SET search_path=" + schema_ +
                "; INSERT INTO messages(alliance, queue, priority, subject_id, payload, "
                "enqueued_at) SELECT alliance, '" +
                kQueue + "', 3, 'ref-' || g, 'payload', " + std::to_string(kT0) +
                " + g FROM generate_series(1, 20004) g, consumer_groups; INSERT INTO "
                "group_messages(alliance, queue, grp, seq, priority, state, attempts, visible_at, "
                "last_error, state_at) SELECT alliance, queue, 'his', seq, CASE WHEN seq = 20003 "
                "THEN 1 ELSE 3 END, "
                "CASE WHEN seq <= 20000 THEN 2 WHEN seq < 20004 THEN 0 ELSE 1 END, 1, 0, '', "
                "enqueued_at FROM messages; ANALYZE"),
            "");
  auto stats = store->ListQueueStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 1u);
  const QueueStats& q = stats->front();
  EXPECT_EQ(q.retained, 20004u);
  ASSERT_EQ(q.groups.size(), 1u);
  EXPECT_EQ(q.groups[0].group, "his");
  EXPECT_EQ(q.groups[0].ready, 3u);
  EXPECT_EQ(q.groups[0].in_flight, 1u);
  EXPECT_EQ(q.groups[0].dead, 0u);
  // The first waiting of all priorities, not the first of the highest (seq 20003, priority 1).
  EXPECT_EQ(q.groups[0].oldest_enqueued_at, kT0 + 20001);

  long touched = 0;
  for (const char* sql :
       {pg_internal::kQueueCountsSql, pg_internal::kQueueOldestSql, pg_internal::kGroupOldestSql}) {
    long buffers = BuffersTouched(schema_, sql);
    ASSERT_GT(buffers, 0) << sql;
    touched += buffers;
  }
  long counted = BuffersTouched(
      schema_,
      "WITH q AS (SELECT queue, COUNT(*) AS n, MIN(seq) AS first FROM messages GROUP BY queue) "
      "SELECT q.queue, q.n, m.enqueued_at FROM q LEFT JOIN messages m ON m.seq=q.first");
  std::printf("queue listing: %ld shared buffers (counting the messages: %ld)\n", touched, counted);
  EXPECT_LT(touched, 60);
  EXPECT_GT(counted, 5 * touched);
}

// Each broker's writer counts into rows of its own (its shard), so two brokers enqueueing to one
// queue never wait for each other's counts; the listing sums them. Statements on a partition
// itself, and partitions detached or attached, change no count until recount_queues()
// (OPERATIONS.md).
TEST_F(PostgresStoreTest, EachBrokerCountsInItsOwnShardAndARecountFollowsPartitionMoves) {
  auto a = Open();
  auto b = Open();
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->EnsureGroup(kQueue, "his", kT0).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Submit(*a, "ref-a" + std::to_string(i)).ok());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(Submit(*b, "ref-b" + std::to_string(i)).ok());
  const std::string counts = schema_ + ".queue_counts";
  EXPECT_EQ(Sql("SELECT COUNT(DISTINCT shard) FROM " + counts + " WHERE state=-1 AND shard>0"),
            "2");
  auto listed = [](Store& store) -> std::pair<uint64_t, uint64_t> {
    auto stats = store.ListQueueStats();
    if (!stats.ok() || stats->size() != 1 || stats->front().groups.size() != 1) return {9, 9};
    return {stats->front().retained, stats->front().groups[0].ready};
  };
  using Listed = std::pair<uint64_t, uint64_t>;
  EXPECT_EQ(listed(*a), (Listed{5, 5}));
  EXPECT_EQ(listed(*b), (Listed{5, 5}));
  // Two messages deleted in the partition itself (these stores know no alliance: the default
  // one): not counted until a recount.
  const std::string messages = schema_ + ".messages__default";
  const std::string group_messages = schema_ + ".group_messages__default";
  ASSERT_EQ(Sql("DELETE FROM " + group_messages + " WHERE seq IN (SELECT seq FROM " + messages +
                " WHERE subject_id LIKE 'ref-b%')"),
            "");
  ASSERT_EQ(Sql("DELETE FROM " + messages + " WHERE subject_id LIKE 'ref-b%'"), "");
  EXPECT_EQ(listed(*a), (Listed{5, 5}));
  ASSERT_EQ(Sql("SET search_path=" + schema_ + "; SELECT recount_queues()"), "");
  EXPECT_EQ(listed(*a), (Listed{3, 3}));
  // Detached (to move to another database), the partitions still count until a recount; attached
  // again, the same.
  const std::string detach = "ALTER TABLE " + schema_ + ".messages DETACH PARTITION " + messages +
                             "; ALTER TABLE " + schema_ + ".group_messages DETACH PARTITION " +
                             group_messages;
  ASSERT_EQ(Sql(detach), "");
  EXPECT_EQ(listed(*a), (Listed{3, 3}));
  ASSERT_EQ(Sql("SET search_path=" + schema_ + "; SELECT recount_queues()"), "");
  EXPECT_EQ(listed(*a), (Listed{0, 0}));
  ASSERT_EQ(Sql("ALTER TABLE " + schema_ + ".messages ATTACH PARTITION " + messages +
                " DEFAULT; ALTER TABLE " + schema_ + ".group_messages ATTACH PARTITION " +
                group_messages + " DEFAULT"),
            "");
  EXPECT_EQ(listed(*a), (Listed{0, 0}));
  ASSERT_EQ(Sql("SET search_path=" + schema_ + "; SELECT recount_queues()"), "");
  EXPECT_EQ(listed(*a), (Listed{3, 3}));
  // A writer whose connection is lost claims a shard again when it reconnects.
  ASSERT_EQ(Sql("SELECT COUNT(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_stat_activity "
                "s ON s.pid=l.pid WHERE l.locktype='advisory' AND s.application_name='refbroker/" +
                schema_ + "'"),
            "2");
  // The first write of each fails (UNAVAILABLE: nothing acknowledged), the next reconnects.
  const uint64_t lost =
      (Submit(*a, "ref-a-lost").ok() ? 1 : 0) + (Submit(*b, "ref-b-lost").ok() ? 1 : 0);
  ASSERT_TRUE(Submit(*b, "ref-b9").ok());
  ASSERT_TRUE(Submit(*a, "ref-a9").ok());
  EXPECT_EQ(listed(*a), (Listed{5 + lost, 5 + lost}));
  EXPECT_EQ(Sql("SELECT COUNT(DISTINCT l.objid) FROM pg_locks l JOIN pg_stat_activity s ON "
                "s.pid=l.pid WHERE l.locktype='advisory' AND s.application_name='refbroker/" +
                schema_ + "'"),
            "2");
}

// A database of schema v3 (no counts) is counted by the migration to v4, once, at the first
// start: the messages stored before it are in the listing.
TEST_F(PostgresStoreTest, TheUpgradeToSchemaV4CountsTheMessagesStoredBeforeIt) {
  {
    auto store = Open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->EnsureGroup(kQueue, "his", kT0).ok());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(Submit(*store, "ref-" + std::to_string(i)).ok());
  }
  // Back to v3 as it was: v4's objects gone, the messages kept.
  ASSERT_EQ(Sql("SET search_path=" + schema_ +
                "; DROP TABLE queue_counts; DROP FUNCTION count_messages, count_group_messages, "
                "recount_queues, count_shard CASCADE; DELETE FROM schema_migrations WHERE "
                "version>=4; SELECT COUNT(*) FROM information_schema.triggers WHERE "
                "event_object_schema='" +
                schema_ + "' AND trigger_name LIKE '%counted'"),
            "0");
  auto store = Open();
  ASSERT_TRUE(store);
  auto stats = store->ListQueueStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ(stats->front().retained, 3u);
  ASSERT_EQ(stats->front().groups.size(), 1u);
  EXPECT_EQ(stats->front().groups[0].ready, 3u);
  EXPECT_EQ(stats->front().groups[0].oldest_enqueued_at, kT0);
  EXPECT_EQ(Sql("SELECT MAX(version) FROM " + schema_ + ".schema_migrations"),
            std::to_string(std::size(postgres_schema::kMigrations)));
}

// The SQL counting the indexes a migration drops: `names` on the partitioned tables and those
// PostgreSQL made from them on each partition
// (`tables`__<alliance>_`columns`_client_request_id_idx).
std::string CountRequestIndexes(const std::string& schema, const std::string& names,
                                const std::string& tables, const std::string& columns) {
  return "SELECT COUNT(*) FROM pg_indexes WHERE schemaname='" + schema + "' AND (indexname IN (" +
         names + ") OR indexname ~ '^(" + tables + ")__.*_(" + columns +
         ")_client_request_id_idx$')";
}

// Schema v5: the duplicate checks read the unique keys, and the indexes they read before are
// dropped, on a new store and on one upgraded from v4, so that no insert or update writes them.
TEST_F(PostgresStoreTest, TheIndexesNoStatementReadsAreDroppedByTheUpgradeToV5) {
  // The two indexes on the partitioned tables and theirs on each partition.
  const std::string dropped = CountRequestIndexes(
      schema_, "'referrals_request', 'consults_request'", "referrals|consults", "sender|requester");
  {
    auto store = Open();
    ASSERT_TRUE(store);
    ASSERT_TRUE(Submit(*store, "ref-1").ok());
  }
  EXPECT_EQ(Sql(dropped), "0");
  // Back to v4: the indexes as v1 made them (on the parent and so on every partition).
  ASSERT_EQ(Sql("SET search_path=" + schema_ +
                "; CREATE INDEX referrals_request ON referrals(sender, client_request_id); "
                "CREATE INDEX consults_request ON consults(requester, client_request_id); "
                "DELETE FROM schema_migrations WHERE version>=5"),
            "");
  ASSERT_NE(Sql(dropped), "0");
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(Sql(dropped), "0");
  // A duplicate submit is still found by its request id, the same referral answered.
  ReferralRecord again = Referral("ref-1");
  auto dup = store->SubmitReferral(again, ReferralEventRecord{"ref-1", "", "", 1, kT0, "e"},
                                   {NewMessage{kQueue, 3, "ref-1", "payload"}});
  ASSERT_TRUE(dup.ok()) << dup.status();
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM " + schema_ + ".messages"), "1");
}

// A publish's and a re-test reason's look-ups by the publishing institution read its
// alliance's partition alone, whatever other alliances share the database: the duplicate checks
// by client request id (each publish, each re-test reason) and a publish's look for an unused
// re-test reason. Without the alliance they searched every partition's index.
TEST_F(PostgresStoreTest, AResultsAndARetestsLookUpsByInstitutionReadItsAlliancesPartitionAlone) {
  PostgresOptions o;
  o.conninfo = Conninfo();
  o.schema = schema_;
  o.alliances = {"pingyu", "xincai"};
  o.alliance_of = [](const std::string& code) -> std::string {
    if (code == "124117234175811018") return "pingyu";
    if (code == "12411729MB1234567X") return "xincai";
    return "";
  };
  auto opened = PostgresStore::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  auto store = std::move(*opened);
  // One result and one re-test reason in each alliance's partition, and the check still finds
  // a duplicate.
  int unused_lookups = 0;
  PublishDecider decide = [&](const PriorScan&, const UnusedRetestLookup& unused,
                              ResultRow&) -> absl::StatusOr<PublishDecision> {
    auto found = unused();
    if (!found.ok()) return found.status();
    unused_lookups += found->has_value() ? 1 : 0;
    return PublishDecision{};
  };
  for (const std::string lab : {"124117234175811018", "12411729MB1234567X"}) {
    RetestRow t;
    t.id = "rt-" + lab;
    t.institution = lab;
    t.client_request_id = "req-rt";
    t.patient_key = "pk-1";
    t.item_code = "LOINC:2345-7";
    t.reason = 1;
    t.recorded_at = kT0;
    t.body = "b";
    auto recorded = store->RecordRetest(t);
    ASSERT_TRUE(recorded.ok()) << recorded.status();
    ResultRow r = Result("res-" + lab, lab, kT0);
    r.client_request_id = "req-res";  // the same request id at both
    for (int i = 0; i < 2; ++i) {
      auto published = store->PublishResult(r, decide);
      ASSERT_TRUE(published.ok()) << published.status();
      EXPECT_EQ(published->duplicate, i == 1);
      EXPECT_EQ(published->row.id, r.id);
    }
    auto again = store->RecordRetest(t);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(again->duplicate);
  }
  EXPECT_EQ(unused_lookups, 2) << "each publisher's own re-test reason found";
  EXPECT_EQ(Sql("SELECT tableoid::regclass::text FROM " + schema_ +
                ".results WHERE id='res-12411729MB1234567X'"),
            schema_ + ".results__xincai");
  // The statements' plans, with xincai's values: xincai's partition, no other.
  const std::pair<const char*, std::vector<std::string>> statements[] = {
      {pg_internal::kResultByRequestSql, {"'12411729MB1234567X'", "'req-res'", "'xincai'"}},
      {pg_internal::kRetestByRequestSql, {"'12411729MB1234567X'", "'req-rt'", "'xincai'"}},
      {pg_internal::kUnusedRetestSql,
       {"'12411729MB1234567X'", "'pk-1'", "'LOINC:2345-7'", "'xincai'"}}};
  for (const auto& [statement, params] : statements) {
    std::string sql = statement;
    for (size_t i = params.size(); i > 0; --i) {
      sql = absl::StrReplaceAll(sql, {{"$" + std::to_string(i), params[i - 1]}});
    }
    std::string plan;
    PGconn* c = PQconnectdb(Conninfo().c_str());
    PGresult* r = PQexec(c, ("SET search_path=" + schema_ + "; EXPLAIN " + sql).c_str());
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r) << sql;
    for (int i = 0; i < PQntuples(r); ++i) plan += std::string(PQgetvalue(r, i, 0)) + "\n";
    PQclear(r);
    PQfinish(c);
    EXPECT_NE(plan.find("__xincai"), std::string::npos) << sql << "\n" << plan;
    EXPECT_EQ(plan.find("__pingyu"), std::string::npos) << sql << "\n" << plan;
    EXPECT_EQ(plan.find("__default"), std::string::npos) << sql << "\n" << plan;
  }
}

// Schema v6: as v5 for referrals and consults, the indexes of the results' and re-test reasons'
// old duplicate checks are gone, on a new store and on one upgraded from v5.
TEST_F(PostgresStoreTest, TheResultsAndRetestsRequestIndexesAreDroppedByTheUpgradeToV6) {
  const std::string dropped = CountRequestIndexes(schema_, "'results_request', 'retests_request'",
                                                  "results|retests", "publisher|institution");
  { ASSERT_TRUE(Open()); }
  EXPECT_EQ(Sql(dropped), "0");
  // Back to v5: the indexes as v1 made them.
  ASSERT_EQ(Sql("SET search_path=" + schema_ +
                "; CREATE INDEX results_request ON results(publisher, client_request_id); "
                "CREATE INDEX retests_request ON retests(institution, client_request_id); "
                "DELETE FROM schema_migrations WHERE version=6"),
            "");
  ASSERT_EQ(Sql(dropped), "4") << "the two and their default partitions'";
  auto store = Open();
  ASSERT_TRUE(store);
  EXPECT_EQ(Sql(dropped), "0");
  EXPECT_EQ(Sql("SELECT MAX(version) FROM " + schema_ + ".schema_migrations"),
            std::to_string(std::size(postgres_schema::kMigrations)));
}

// A clinic's newest referrals (its system's listing, `refctl referrals`) are read from the
// two indexes of its columns (sender, receiver), each stopping at the page: not every referral
// it ever sent, which the one statement with every filter optional read and sorted.
TEST_F(PostgresStoreTest, AClinicsNewestReferralsAreReadFromItsIndexesNotAllItsReferrals) {
  auto store = Open();
  ASSERT_TRUE(store);
  const std::string clinic = "124117234175811018";
  // 20,000 referrals the clinic sent, 2,000 it received back, and 20,000 of another clinic.
  ASSERT_EQ(Sql("SET search_path=" + schema_ +
                "; INSERT INTO referrals(alliance, id, sender, receiver, client_request_id, "
                "request_digest, state, priority, submitted_at, updated_at, body, direction, "
                "journey_id, decision_due_at, version) SELECT 'pingyu', 'ref-' || "
                "lpad(g::text, 6, '0'), CASE WHEN g % 21 = 0 THEN '12411723417580001B' WHEN g % "
                "2 = 0 THEN '" +
                clinic + "' ELSE '12411723417581102B' END, CASE WHEN g % 21 = 0 THEN '" + clinic +
                "' ELSE '12411723417580001B' END, 'req-' || g, '\\x00', 6, 3, " +
                std::to_string(kT0) + " + g, " + std::to_string(kT0) +
                " + g, '\\x00', 1, 'jny-' || g, NULL, 1 FROM generate_series(1, 42000) g; "
                "ANALYZE"),
            "");
  ReferralQuery q;
  q.party = clinic;
  q.limit = 50;
  auto page = store->ListReferrals(q);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->size(), 50u);
  // Newest first, sent and received alike: 42000 is received (a multiple of 21), 41998 sent.
  EXPECT_EQ((*page)[0].id, "ref-042000");
  EXPECT_EQ((*page)[1].id, "ref-041998");
  for (size_t i = 1; i < page->size(); ++i) {
    EXPECT_GT((*page)[i - 1].submitted_at, (*page)[i].submitted_at);
    EXPECT_TRUE((*page)[i].sender == clinic || (*page)[i].receiver == clinic);
  }
  // The next page starts where this one ended.
  q.after_submitted_at = page->back().submitted_at;
  q.after_id = page->back().id;
  auto next = store->ListReferrals(q);
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_EQ(next->size(), 50u);
  EXPECT_LT((*next)[0].submitted_at, page->back().submitted_at);

  ReferralQuery first;
  first.party = clinic;
  first.limit = 50;
  const std::string built = absl::StrReplaceAll(
      internal::ReferralListSql(first, "id, submitted_at", internal::SqlDialect::kPostgres),
      {{"$12", "50"}, {"$1", "'" + clinic + "'"}});
  long touched = BuffersTouched(schema_, built);
  // What the one statement came to once planned with its values: one search of both columns.
  long one_search = BuffersTouched(
      schema_, "SELECT id, submitted_at FROM referrals WHERE (sender='" + clinic +
                   "' OR receiver='" + clinic + "') ORDER BY submitted_at DESC, id DESC LIMIT 50");
  std::printf("a clinic's newest 50 referrals: %ld shared buffers (one search of both: %ld)\n",
              touched, one_search);
  ASSERT_GT(touched, 0);
  EXPECT_LT(touched, 200);
  EXPECT_GT(one_search, 10 * touched);
}

// The writer's connection is in pipeline mode: statements whose result nobody reads are sent
// without waiting, and the next statement that is read back (or a sync) answers them all in one
// round trip. A failure among them is returned there, with its SQLSTATE, and the server skips
// what was sent after it.
TEST_F(PostgresStoreTest, APipelinedConnectionWaitsOnceForWhatItQueuedAndReturnsItsFailure) {
  ASSERT_EQ(
      Sql("CREATE SCHEMA " + schema_ + "; CREATE TABLE " + schema_ + ".t(k bigint PRIMARY KEY)"),
      "");
  auto opened = internal::PgConn::Connect(Conninfo(), schema_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  internal::PgConn& c = **opened;
  ASSERT_TRUE(c.EnterPipelineMode().ok());
  const char* kInsert = "INSERT INTO t(k) VALUES($1::bigint)";
  uint64_t before = c.round_trips();
  ASSERT_TRUE(c.QueueExec("BEGIN").ok());
  for (int64_t k = 1; k <= 3; ++k) ASSERT_TRUE(c.Queue(kInsert, internal::PgParams().Add(k)).ok());
  auto count = c.Run("SELECT COUNT(*) FROM t");
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(count->Int(0, 0), 3);
  EXPECT_EQ(c.round_trips() - before, 1u);

  // A duplicate key among queued inserts: the sync returns it; the insert after it never ran.
  ASSERT_TRUE(c.QueueExec("SAVEPOINT a").ok());
  ASSERT_TRUE(c.Queue(kInsert, internal::PgParams().Add(int64_t{2})).ok());
  ASSERT_TRUE(c.Queue(kInsert, internal::PgParams().Add(int64_t{9})).ok());
  absl::Status failed = c.Sync();
  EXPECT_TRUE(absl::IsAlreadyExists(failed)) << failed;
  EXPECT_EQ(c.last_sqlstate(), "23505");
  ASSERT_TRUE(c.QueueExec("ROLLBACK TO a").ok());
  ASSERT_TRUE(c.Queue(kInsert, internal::PgParams().Add(int64_t{4})).ok());
  ASSERT_TRUE(c.Exec("COMMIT").ok());
  EXPECT_EQ(Sql("SELECT string_agg(k::text, ',' ORDER BY k) FROM " + schema_ + ".t"), "1,2,3,4");

  // Statements run together: one wait, the reads' results in order, the others' not kept.
  before = c.round_trips();
  auto together = c.RunTogether({{"SELECT COUNT(*) FROM t", internal::PgParams()},
                                 {kInsert, internal::PgParams().Add(int64_t{5}), false},
                                 {"SELECT MAX(k) FROM t", internal::PgParams()}});
  ASSERT_TRUE(together.ok()) << together.status();
  EXPECT_EQ(c.round_trips() - before, 1u);
  ASSERT_EQ(together->size(), 2u);
  EXPECT_EQ((*together)[0].Int(0, 0), 4);
  EXPECT_EQ((*together)[1].Int(0, 0), 5);
  ASSERT_TRUE(c.Exec("DELETE FROM t WHERE k=5").ok());
  // A failure among them is the answer; what followed it did not run.
  auto failed_together = c.RunTogether({{kInsert, internal::PgParams().Add(int64_t{1}), false},
                                        {kInsert, internal::PgParams().Add(int64_t{8}), false},
                                        {"SELECT COUNT(*) FROM t", internal::PgParams()}});
  EXPECT_TRUE(absl::IsAlreadyExists(failed_together.status())) << failed_together.status();
  EXPECT_EQ(Sql("SELECT string_agg(k::text, ',' ORDER BY k) FROM " + schema_ + ".t"), "1,2,3,4");

  // An update queued to change one row: done when it does; when it changes none, the sync is
  // ABORTED with its message, and what followed it ran (the caller rolls back).
  const char* kBump = "UPDATE t SET k=k+100 WHERE k=$1::bigint";
  ASSERT_TRUE(c.QueueExec("BEGIN").ok());
  ASSERT_TRUE(c.QueueOneRow(kBump, internal::PgParams().Add(int64_t{4}), "no row 4").ok());
  ASSERT_TRUE(c.Sync().ok());
  ASSERT_TRUE(c.QueueOneRow(kBump, internal::PgParams().Add(int64_t{4}), "no row 4").ok());
  ASSERT_TRUE(c.Queue(kInsert, internal::PgParams().Add(int64_t{7})).ok());
  absl::Status none = c.Sync();
  EXPECT_TRUE(absl::IsAborted(none)) << none;
  EXPECT_EQ(none.message(), "no row 4");
  EXPECT_EQ(c.last_sqlstate(), "");
  auto seven = c.Run("SELECT COUNT(*) FROM t WHERE k IN (7, 104)");
  ASSERT_TRUE(seven.ok()) << seven.status();
  EXPECT_EQ(seven->Int(0, 0), 2);
  ASSERT_TRUE(c.Exec("ROLLBACK").ok());

  // A statement whose prepare failed is not taken for prepared: sent again, it fails the same way.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.Queue("SELEC 1").ok());
    absl::Status bad = c.Sync();
    EXPECT_NE(bad.message().find("syntax error"), std::string::npos) << bad;
  }

  // A lost connection is UNAVAILABLE; after the reconnect the connection pipelines again.
  ASSERT_EQ(Sql("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                "application_name='refbroker/" +
                schema_ + "'"),
            "1");
  ASSERT_TRUE(c.Queue(kInsert, internal::PgParams().Add(int64_t{5})).ok());
  absl::Status lost = c.Sync();
  EXPECT_TRUE(absl::IsUnavailable(lost)) << lost;
  ASSERT_TRUE(c.broken());
  ASSERT_TRUE(c.Reconnect().ok());
  EXPECT_TRUE(c.pipelined());
  before = c.round_trips();
  for (int64_t k = 5; k <= 6; ++k) ASSERT_TRUE(c.Queue(kInsert, internal::PgParams().Add(k)).ok());
  ASSERT_TRUE(c.Sync().ok());
  EXPECT_EQ(c.round_trips() - before, 1u);
  EXPECT_EQ(Sql("SELECT string_agg(k::text, ',' ORDER BY k) FROM " + schema_ + ".t"),
            "1,2,3,4,5,6");
}

// A submit waits for the database three times (its duplicate check, its savepoint's release
// with everything it queued, the commit), not once per statement (nine). A failure among its
// queued writes fails that submit alone, and nothing it queued stays.
TEST_F(PostgresStoreTest, TheWriterWaitsOnlyForWhatItReadsAndAQueuedFailureFailsItsRequest) {
  auto store = Open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(Submit(*store, "ref-1").ok());  // prepares the statements
  uint64_t before = store->writer_round_trips();
  ASSERT_TRUE(Submit(*store, "ref-2").ok());
  EXPECT_LE(store->writer_round_trips() - before, 3u);

  // The same referral id under another client request id: the duplicate check passes and the
  // queued INSERT fails on the primary key, after which its event and message were sent.
  ReferralRecord r = Referral("ref-2");
  r.client_request_id = "another-request";
  ReferralEventRecord e{"ref-2", "", "", 1, kT0, "e"};
  auto dup = store->SubmitReferral(r, e, {NewMessage{kQueue, 3, "ref-2", "payload"}});
  EXPECT_TRUE(absl::IsAlreadyExists(dup.status())) << dup.status();
  ASSERT_TRUE(Submit(*store, "ref-3").ok());
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM " + schema_ + ".messages"), "3");
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM " + schema_ + ".referral_events"), "3");
  auto stats = store->ListQueueStats();
  ASSERT_TRUE(stats.ok() && stats->size() == 1) << stats.status();
  EXPECT_EQ(stats->front().retained, 3u);
}

// An ack whose follow-up changes its referral (DELIVERED) waits four times: the ack, the
// referral read and locked, the savepoint's release with the update, its event and message, and
// the commit. The update is queued (the row is locked, its version read); a follow-up built from
// another version is ABORTED and leaves neither the ack nor any of the change.
TEST_F(PostgresStoreTest, AnAcksFollowUpQueuesItsUpdateAndAStaleOneLeavesNothing) {
  auto store = Open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureGroup(kQueue, "his", kT0).ok());
  for (const char* id : {"ref-1", "ref-2", "ref-3"}) ASSERT_TRUE(Submit(*store, id).ok());
  auto leased = store->Lease(HisLease(3, kT0 + 600 * kSecond));
  ASSERT_TRUE(leased.ok() && leased->messages.size() == 3u) << leased.status();
  int64_t version_offset = 0;
  AckFollowUp delivered = [&](const ReferralRecord& r) -> std::optional<ReferralChange> {
    ReferralChange c;
    c.referral_id = r.id;
    c.expected_version = r.version + version_offset;
    c.state = 2;
    c.receiver = r.receiver;
    c.updated_at = kT0 + kSecond;
    c.body = "delivered";
    c.event = ReferralEventRecord{r.id, "broker", "", 2, kT0 + kSecond, "e"};
    c.messages = {NewMessage{"124117234175811018/referral-updates", 3, r.id, "update"}};
    return c;
  };
  auto ack = [&](size_t i) {
    return store->AckBatch(kQueue, "his", {leased->messages[i].sequence}, kT0 + kSecond, delivered);
  };
  ASSERT_TRUE(ack(0).ok());  // prepares the statements
  uint64_t before = store->writer_round_trips();
  auto second = ack(1);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->size(), 1u);
  EXPECT_TRUE((*second)[0].first_ack);
  EXPECT_TRUE((*second)[0].follow_up.has_value());
  EXPECT_LE(store->writer_round_trips() - before, 4u);
  auto two = store->GetReferral("ref-2");
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->state, 2);
  EXPECT_EQ(two->version, 2);

  version_offset = 5;  // built from a version the row does not have
  auto stale = ack(2);
  EXPECT_TRUE(absl::IsAborted(stale.status())) << stale.status();
  auto three = store->GetReferral("ref-3");
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(three->state, 1);
  EXPECT_EQ(three->version, 1);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM " + schema_ + ".referral_events WHERE action=2"), "2");
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM " + schema_ + ".messages WHERE subject_id='ref-3'"), "1");
  EXPECT_EQ(Sql("SELECT state FROM " + schema_ +
                ".group_messages WHERE seq=" + std::to_string(leased->messages[2].sequence)),
            "1")
      << "still in flight";
}

// A batch of acks waits as one ack does: every ack in one round trip, every referral they
// move to DELIVERED read and locked in one more. Two acks of the batch about one referral: the
// second is read after the first one's change, and finds nothing more to do.
TEST_F(PostgresStoreTest, ABatchOfAcksReadsItsAcksAndItsReferralsInOneWaitEach) {
  auto store = Open();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->EnsureGroup(kQueue, "his", kT0).ok());
  for (const char* id : {"ref-0", "ref-1", "ref-2", "ref-3"}) ASSERT_TRUE(Submit(*store, id).ok());
  // ref-4 has a second message on the queue (as a requeue would leave).
  ReferralRecord twice = Referral("ref-4");
  ASSERT_TRUE(store
                  ->SubmitReferral(twice, ReferralEventRecord{"ref-4", "", "", 1, kT0, "e"},
                                   {NewMessage{kQueue, 3, "ref-4", "payload"},
                                    NewMessage{kQueue, 3, "ref-4", "again"}})
                  .ok());
  auto leased = store->Lease(HisLease(10, kT0 + 600 * kSecond));
  ASSERT_TRUE(leased.ok() && leased->messages.size() == 6u) << leased.status();
  AckFollowUp delivered = [&](const ReferralRecord& r) -> std::optional<ReferralChange> {
    if (r.state != 1) return std::nullopt;  // delivered already
    ReferralChange c;
    c.referral_id = r.id;
    c.expected_version = r.version;
    c.state = 2;
    c.receiver = r.receiver;
    c.updated_at = kT0 + kSecond;
    c.body = "delivered";
    c.event = ReferralEventRecord{r.id, "broker", "", 2, kT0 + kSecond, "e"};
    return c;
  };
  std::vector<uint64_t> seqs;
  for (const LeasedMessage& m : leased->messages) seqs.push_back(m.sequence);
  ASSERT_TRUE(store->AckBatch(kQueue, "his", {seqs[0]}, kT0 + kSecond, delivered).ok());
  const uint64_t before = store->writer_round_trips();
  auto acks = store->AckBatch(kQueue, "his", {seqs[1], seqs[2], seqs[3]}, kT0 + kSecond, delivered);
  ASSERT_TRUE(acks.ok()) << acks.status();
  // The acks, the referrals, the sync of the changes, the commit (one at a time: 8).
  EXPECT_LE(store->writer_round_trips() - before, 4u);
  ASSERT_EQ(acks->size(), 3u);
  for (const AckResult& a : *acks) {
    EXPECT_TRUE(a.first_ack);
    EXPECT_TRUE(a.follow_up.has_value()) << a.subject_id;
  }
  auto both = store->AckBatch(kQueue, "his", {seqs[4], seqs[5], seqs[1]}, kT0 + kSecond, delivered);
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_EQ(both->size(), 3u);
  EXPECT_TRUE((*both)[0].follow_up.has_value());
  EXPECT_TRUE((*both)[1].first_ack);
  EXPECT_FALSE((*both)[1].follow_up.has_value()) << "read after the first one's change";
  EXPECT_FALSE((*both)[2].first_ack) << "acked before";
  auto four = store->GetReferral("ref-4");
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ(four->state, 2);
  EXPECT_EQ(four->version, 2);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM " + schema_ + ".referral_events WHERE action=2"), "5");
}

// A publish waits three times: its duplicate check, the patient's item locked and its earlier
// results read (one round trip), the sync of what it queued, and the commit. It waited four.
TEST_F(PostgresStoreTest, APublishReadsItsDuplicateCheckAndEarlierResultsInOneWait) {
  auto store = Open();
  ASSERT_TRUE(store);
  PublishDecider decide = [](const PriorScan& priors, const UnusedRetestLookup&,
                             ResultRow&) -> absl::StatusOr<PublishDecision> {
    int seen = 0;
    absl::Status read = priors(EveryPrior, [&](const ResultRow&) { return ++seen < 5; });
    if (!read.ok()) return read;
    return PublishDecision{};
  };
  auto publish = [&](const std::string& id, Micros performed_at) {
    return store->PublishResult(Result(id, "124117234175811018", performed_at), decide);
  };
  ASSERT_TRUE(publish("res-1", kT0 - 2 * kSecond).ok());  // prepares the statements
  const uint64_t before = store->writer_round_trips();
  auto second = publish("res-2", kT0 - kSecond);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(second->duplicate);
  EXPECT_LE(store->writer_round_trips() - before, 3u);
  // A duplicate is still answered with the stored result, in the same one wait.
  auto again = publish("res-2", kT0 - kSecond);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM " + schema_ + ".results"), "2");
}

// A request that queued a write and then failed for a reason of its own rolls back alone, even
// when the queued write failed too: the requests sharing its transaction commit, and it gets
// its own error, not the queued write's.
TEST_F(PostgresStoreTest, ARequestThatFailsAfterAFailedQueuedWriteRollsBackAlone) {
  ASSERT_EQ(Sql("CREATE SCHEMA " + schema_ + "; CREATE TABLE " + schema_ +
                ".t(k bigint PRIMARY KEY); INSERT INTO " + schema_ + ".t VALUES (1)"),
            "");
  auto opened = internal::PgConn::Connect(Conninfo(), schema_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_TRUE((*opened)->EnterPipelineMode().ok());
  internal::PgWriter writer(std::move(*opened), 64);
  const char* kInsert = "INSERT INTO t(k) VALUES($1::bigint)";
  auto insert = [&](int64_t k) {
    return
        [&, k](internal::PgTx& tx) { return tx.conn.Queue(kInsert, internal::PgParams().Add(k)); };
  };
  // The first request holds the writer while the other two queue for the next batch.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> holding{false};
  std::thread first([&] {
    (void)writer.Write([&](internal::PgTx& tx) {
      holding = true;
      released.wait();
      return insert(2)(tx);
    });
  });
  while (!holding) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  absl::Status failing, good;
  std::thread b([&] {
    failing = writer.Write([&](internal::PgTx& tx) -> absl::Status {
      absl::Status queued = insert(1)(tx);  // a duplicate key, found only when read
      if (!queued.ok()) return queued;
      return absl::FailedPreconditionError("the request's own reason");
    });
  });
  std::thread c([&] { good = writer.Write(insert(3)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  release.set_value();
  first.join();
  b.join();
  c.join();
  EXPECT_TRUE(absl::IsFailedPrecondition(failing)) << failing;
  EXPECT_TRUE(good.ok()) << good;
  EXPECT_EQ(Sql("SELECT string_agg(k::text, ',' ORDER BY k) FROM " + schema_ + ".t"), "1,2,3");
}

TEST_F(PostgresStoreTest, AnUnreachableDatabaseIsUnavailableAtOpen) {
  PostgresOptions o;
  o.conninfo = "host=127.0.0.1 port=1 dbname=x connect_timeout=2";
  o.schema = schema_;
  auto s = PostgresStore::Open(o);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsUnavailable(s.status())) << s.status();
  o.schema = "Bad-Name";
  EXPECT_TRUE(absl::IsInvalidArgument(PostgresStore::Open(o).status()));
}

}  // namespace
}  // namespace refbroker::storage

// The queue listing reads counts, not messages (SQLite schema v11): every metrics scrape,
// status page and `refctl queues` lists the queues, and counting the rows read every message
// retained (0.5 s with a million queued, 16 s with a cold page cache). A store from before v11
// is counted when it opens.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

#include "broker/storage/sqlite_store.h"
#include "tests/support/read_calls.h"
#include "tests/support/schema_versions.h"
#include "tests/support/sqlite_store_file.h"

namespace refbroker::storage {
namespace {

constexpr char kQueue[] = "12411723417580001B/referrals";
constexpr int kMessages = 50000;

class QueueCounts : public testing::SqliteStoreFile {
 protected:
  // kMessages messages queued for the hospital's group "his" (priorities 1 to 3, the first
  // enqueued at 1000), and one more for a queue without groups, written as rows.
  void Fill() {
    {
      auto store = Open();
      ASSERT_NE(store, nullptr);
      ASSERT_TRUE(store->EnsureGroup(kQueue, "his", 1).ok());
    }
    EXPECT_EQ(Exec("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<" +
                   std::to_string(kMessages) +
                   ") INSERT INTO messages(queue, priority, subject_id, payload, enqueued_at) "
                   "SELECT '" +
                   kQueue +
                   "', i % 3 + 1, 'ref-' || i, zeroblob(100), 1000 + i "
                   "FROM c;"
                   "INSERT INTO group_messages SELECT queue, 'his', seq, priority, 0, 0, 0, '', "
                   "enqueued_at FROM messages;"
                   "INSERT INTO messages(queue, priority, subject_id, payload, enqueued_at) "
                   "VALUES('124117234175811018/referral-updates', 3, 'ref-x', 'u', 500);"),
              "");
  }

  // Asserts the figures of the two queues Fill made.
  void ExpectFilled(const std::vector<QueueStats>& stats) {
    ASSERT_EQ(stats.size(), 2u);
    const QueueStats& updates = stats[1];  // sorted by name: the hospital's queue first
    EXPECT_EQ(updates.queue, "124117234175811018/referral-updates");
    EXPECT_EQ(updates.retained, 1u);
    EXPECT_EQ(updates.unconsumed, 1u);
    EXPECT_EQ(updates.oldest_unconsumed_at, 500);
    const QueueStats& hospital = stats[0];
    EXPECT_EQ(hospital.retained, static_cast<uint64_t>(kMessages));
    EXPECT_EQ(hospital.unconsumed, 0u);
    ASSERT_EQ(hospital.groups.size(), 1u);
    EXPECT_EQ(hospital.groups[0].group, "his");
    EXPECT_EQ(hospital.groups[0].ready, static_cast<uint64_t>(kMessages));
    EXPECT_EQ(hospital.groups[0].in_flight, 0u);
    EXPECT_EQ(hospital.groups[0].oldest_enqueued_at, 1001);
  }
};

TEST_F(QueueCounts, TheListingReadsAHandfulOfPagesHoweverManyMessagesAreQueued) {
  ASSERT_NO_FATAL_FAILURE(Fill());
  auto store = Open();  // fresh connections: nothing of the queue in their page caches
  ASSERT_NE(store, nullptr);
  double before = testing::OwnReadCalls();
  auto stats = store->ListQueueStats();
  double reads = testing::OwnReadCalls() - before;
  ASSERT_TRUE(stats.ok()) << stats.status();
  ExpectFilled(*stats);
  // Counting the rows read every page of the group's rows and of the queue's index (~1,000).
  EXPECT_LT(reads, 100) << "the listing read " << reads << " pages";
}

TEST_F(QueueCounts, AStoreFromBeforeTheCountsIsCountedWhenItOpens) {
  ASSERT_NO_FATAL_FAILURE(Fill());
  EXPECT_EQ(Exec(std::string(testing::kUndoSchemaV11) + "PRAGMA user_version = 10;"), "");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto stats = store->ListQueueStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  ExpectFilled(*stats);
}

}  // namespace
}  // namespace refbroker::storage

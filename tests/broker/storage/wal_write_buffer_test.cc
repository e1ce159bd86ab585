#include "broker/storage/internal/wal_write_buffer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/broker/storage/wal_table_db.h"

namespace refbroker::storage::internal {
namespace {

std::string FreshDb(const std::string& name) { return FreshWalDb("refbroker-walbuf", name); }
std::unique_ptr<Db> Open(const std::string& path) { return OpenWalTable(path); }

int64_t Count(Db& db, const char* sql) {
  auto st = db.Prepare(sql);
  EXPECT_TRUE(st.ok());
  auto row = (*st)->Step();
  EXPECT_TRUE(row.ok() && *row);
  return (*st)->Int(0);
}

// One commit of ~100 pages: SQLite asks for two writes per frame, and the file gets a few.
// 100 frames are ~400 KiB, more than the unix VFS writes in one call (128 KiB): the buffer must
// go out in parts, or the commit fails as if the disk were full.
TEST(WalWriteBuffer, ACommitReachesTheFileInAFewWrites) {
  std::string path = FreshDb("few.db");
  auto db = Open(path);
  WalWriteStats before = GetWalWriteStats();
  ASSERT_TRUE(db->Exec("BEGIN").ok());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(db->Exec("INSERT INTO t(v) VALUES(randomblob(3500))").ok());
  }
  ASSERT_TRUE(db->Exec("COMMIT").ok());
  WalWriteStats after = GetWalWriteStats();
  uint64_t asked = after.frame_writes - before.frame_writes;
  uint64_t made = after.file_writes - before.file_writes;
  EXPECT_GE(asked, 200u);
  EXPECT_GE(made, 4u);  // at least 400 KiB in writes of at most 128 KiB
  EXPECT_LE(made, 6u);
  EXPECT_EQ(after.syncs - before.syncs, 1u);       // one commit, one fdatasync of the WAL
  EXPECT_GT(after.sync_nanos, before.sync_nanos);  // the writes and the fdatasync took time

  auto reader = Db::Open(path, true);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(Count(**reader, "SELECT count(*) FROM t"), 100);
  EXPECT_EQ(Count(**reader, "SELECT sum(length(v)) FROM t"), 350000);
}

// A transaction larger than the page cache spills pages into the WAL before it commits, and
// reads them back from there: the read must see the bytes still held in memory.
TEST(WalWriteBuffer, AConnectionReadsBackFramesItHasNotWrittenYet) {
  std::string path = FreshDb("spill.db");
  auto db = Open(path);
  ASSERT_TRUE(db->Exec("PRAGMA cache_size=10").ok());
  ASSERT_TRUE(db->Exec("BEGIN").ok());
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(db->Exec("INSERT INTO t(v) VALUES(randomblob(1000))").ok());
  }
  EXPECT_EQ(Count(*db, "SELECT count(*) FROM t"), 2000);
  EXPECT_EQ(Count(*db, "SELECT sum(length(v)) FROM t"), 2000000);
  ASSERT_TRUE(db->Exec("COMMIT").ok());

  auto check = Db::Open(path, true);
  ASSERT_TRUE(check.ok());
  auto st = (*check)->Prepare("PRAGMA integrity_check");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(*(*st)->Step());
  EXPECT_EQ((*st)->Text(0), "ok");
  EXPECT_EQ(Count(**check, "SELECT count(*) FROM t"), 2000);
}

}  // namespace
}  // namespace refbroker::storage::internal

// Files SQLite opens are opened with readahead off (broker/storage/internal/no_readahead.h).

#include "broker/storage/internal/no_readahead.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "broker/storage/sqlite_backup.h"
#include "tests/broker/storage/wal_table_db.h"
#include "tests/support/page_cache.h"

namespace refbroker::storage::internal {
namespace {

using refbroker::testing::ResidentPages;

// Writes the file's pages to disk and asks the kernel to drop them from its cache.
void Evict(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

TEST(NoReadahead, EveryFileTheStoreOpensIsAdvised) {
  std::string path = FreshWalDb("no-readahead-test", "advised.db");
  uint64_t before = FilesOpenedWithoutReadahead();
  auto db = OpenWalTable(path);  // the database and its WAL
  ASSERT_TRUE(db->Exec("INSERT INTO t(v) VALUES (x'00')").ok());
  EXPECT_GE(FilesOpenedWithoutReadahead() - before, 2u);
}

TEST(NoReadahead, AReadBringsInOnlyThePagesItNeeds) {
  std::string path = FreshWalDb("no-readahead-test", "pages.db");
  {
    auto db = OpenWalTable(path);
    ASSERT_TRUE(db->Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n "
                         "WHERE i < 4000) INSERT INTO t(k, v) SELECT i, randomblob(900) FROM n")
                    .ok());
    ASSERT_TRUE(db->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  }
  ASSERT_GT(ResidentPages(path), 800);  // ~4 MB of 4 KiB pages, just written
  Evict(path);
  long left = ResidentPages(path);
  if (left < 0 || left > 8) GTEST_SKIP() << "this filesystem keeps the pages (" << left << ")";

  auto db = Db::Open(path, /*read_only=*/true);
  ASSERT_TRUE(db.ok()) << db.status();
  auto st = (*db)->Prepare("SELECT length(v) FROM t WHERE k = 2000");
  ASSERT_TRUE(st.ok()) << st.status();
  auto row = (*st)->Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ((*st)->Int(0), 900);
  // The header, the table's root, an interior page and the leaf: 4 pages on this project's
  // machine. With readahead on it was 22.
  EXPECT_LE(ResidentPages(path), 8);
}

// `refbroker backup` is its own process, which opens the store without Db::Open: its reads of
// the whole live file are what left a 9 GB store cached in 2 MiB folios (8.3 GB of
// FileHugePages), after which the broker's writer spent 117-134 µs of CPU per published result
// instead of 68. The test body runs again in a fresh process (threadsafe death test), where
// nothing has installed the replacement before the backup does.
TEST(NoReadahead, ABackupReadsTheStoreWithoutReadahead) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::string path = FreshWalDb("no-readahead-test", "live.db");
  std::string copy = FreshWalDb("no-readahead-test", "copy.db");
  sqlite3* raw = nullptr;  // not Db::Open, which would install it first
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(raw, "CREATE TABLE t(v); INSERT INTO t VALUES (1)", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(raw);
  EXPECT_EXIT(
      {
        uint64_t before = FilesOpenedWithoutReadahead();
        auto out = SqliteBackup(path, copy);
        // This process ran the test from its start and made a scratch directory of its own.
        std::filesystem::remove_all(refbroker::testing::ScratchDir());
        std::_Exit(before == 0 && out.ok() && FilesOpenedWithoutReadahead() >= 2 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace refbroker::storage::internal

#pragma once
// For the tests of the SQLite store's WAL machinery (checkpointer, WAL write buffer): a fresh
// database path in a per-process temporary directory, and a connection to it in WAL mode with
// synchronous=FULL (as the store runs) and a table t(k INTEGER PRIMARY KEY, v BLOB).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "broker/storage/internal/sqlite_db.h"
#include "tests/support/scratch_dir.h"

namespace refbroker::storage::internal {

// `name` in <prefix>/ of the test's scratch directory, with any file of that name and its -wal
// and -shm removed.
inline std::string FreshWalDb(const std::string& prefix, const std::string& name) {
  auto dir = testing::ScratchDir() / prefix;
  std::filesystem::create_directories(dir);
  auto path = dir / name;
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path.string() + suffix);
  return path.string();
}

inline std::unique_ptr<Db> OpenWalTable(const std::string& path) {
  auto db = Db::Open(path, false);
  EXPECT_TRUE(db.ok()) << db.status();
  EXPECT_TRUE((*db)
                  ->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                         "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v BLOB)")
                  .ok());
  return std::move(*db);
}

}  // namespace refbroker::storage::internal

#pragma once
// A test fixture for tests of the SQLite store's file: a store in a directory of its own under
// the test binary's scratch directory (opened, closed and opened again as the test needs), and
// plain SQL on its file with the store closed (to put it back into an older schema, or to write
// rows as another version would have).

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <memory>
#include <string>

#include "broker/storage/sqlite_store.h"
#include "tests/support/scratch_dir.h"

namespace refbroker::testing {

class SqliteStoreFile : public ::testing::Test {
 protected:
  // The directory is named after the test suite.
  void SetUp() override {
    dir_ = ScratchDir() / ::testing::UnitTest::GetInstance()->current_test_suite()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    options_.path = (dir_ / "refbroker.db").string();
  }

  std::unique_ptr<storage::SqliteStore> Open() {
    auto store = storage::SqliteStore::Open(options_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Runs `sql` on the store's file with a plain connection (the store closed); returns SQLite's
  // error message, empty when it ran.
  std::string Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(options_.path.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    std::string out = error != nullptr ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    return out;
  }

  std::filesystem::path dir_;
  storage::SqliteOptions options_;
};

}  // namespace refbroker::testing

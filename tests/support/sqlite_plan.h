#pragma once
// How SQLite runs a statement on a store's schema, for tests that hold a query to its index.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

namespace refbroker::testing {

// One line per step of EXPLAIN QUERY PLAN for `sql` on the database at `path`.
inline std::vector<std::string> PlanOf(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::vector<std::string> plan;
  int rc = sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &st, nullptr);
  EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db) << "\n" << sql;
  while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    plan.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 3)));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return plan;
}

}  // namespace refbroker::testing

#pragma once
// Files the tests read and damage: a whole file as bytes (a broker's log, a store's note), and
// a SQLite table's root page overwritten, so that the file still opens and the broker serves
// it, but its structure is broken where only an integrity check looks.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace refbroker::testing {

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `table`'s root page in the database file `db_path` (its WAL folded in first) filled with
// 0xA5 bytes. Give the table several levels, or the damage may look like an empty table.
inline void OverwriteRootPage(const std::string& db_path, const std::string& table) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  auto integer = [&](const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
  };
  sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  const int64_t root = integer("SELECT rootpage FROM sqlite_master WHERE name='" + table + "'");
  const int64_t page = integer("PRAGMA page_size");
  sqlite3_close(db);
  ASSERT_GT(root, 1) << table;
  std::fstream f(db_path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp((root - 1) * page);
  const std::string junk(static_cast<size_t>(page), '\xA5');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
}

}  // namespace refbroker::testing

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "broker/storage/internal/sqlite_db.h"

namespace refbroker::storage::internal {
namespace {

// 200,000 rows counted: tens of milliseconds, far above a 1 ms threshold and far below the
// one-second spacing of the log's lines.
constexpr char kSlow[] =
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<200000) "
    "SELECT count(*), ?1 FROM c";

class SlowStatementLog : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("refbroker-slow-statement-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  }
  void TearDown() override {
    spdlog::set_default_logger(previous_);
    std::filesystem::remove_all(dir_);
  }

  // Runs the slow statement with a patient's key bound to it.
  void RunSlow(Db& db) {
    auto st = db.Prepare(kSlow);
    ASSERT_TRUE(st.ok()) << st.status();
    (*st)->Bind(1, std::string("110101199003071234"));
    auto row = (*st)->Step();
    ASSERT_TRUE(row.ok() && *row);
  }

  std::filesystem::path dir_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(SlowStatementLog, NamesTheStatementAndItsConnectionWithoutTheBoundValues) {
  auto db = Db::Open((dir_ / "a.db").string(), /*read_only=*/false);
  ASSERT_TRUE(db.ok());
  (*db)->LogSlowStatements(1, "reader 2");
  RunSlow(**db);
  std::string line = log_.str();
  EXPECT_NE(line.find("storage: a statement took"), std::string::npos) << line;
  EXPECT_NE(line.find("on the reader 2 connection"), std::string::npos) << line;
  EXPECT_NE(line.find("WITH RECURSIVE c(i)"), std::string::npos) << line;
  EXPECT_EQ(line.find("110101199003071234"), std::string::npos) << line;  // only "?1"
}

size_t Lines(const std::string& log) {
  size_t lines = 0;
  for (size_t at = log.find("storage: a statement took"); at != std::string::npos;
       at = log.find("storage: a statement took", at + 1)) {
    lines++;
  }
  return lines;
}

TEST_F(SlowStatementLog, WritesAtMostOneLineASecondAndCountsTheOthers) {
  auto db = Db::Open((dir_ / "b.db").string(), /*read_only=*/false);
  ASSERT_TRUE(db.ok());
  (*db)->LogSlowStatements(1, "writer");
  RunSlow(**db);
  RunSlow(**db);
  RunSlow(**db);
  EXPECT_EQ(Lines(log_.str()), 1u) << log_.str();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  RunSlow(**db);
  EXPECT_EQ(Lines(log_.str()), 2u) << log_.str();
  EXPECT_NE(log_.str().find("(2 more slow ones since the last line)"), std::string::npos)
      << log_.str();
}

TEST_F(SlowStatementLog, IsSilentBelowItsThresholdAndWhenOff) {
  auto db = Db::Open((dir_ / "c.db").string(), /*read_only=*/false);
  ASSERT_TRUE(db.ok());
  (*db)->LogSlowStatements(600000, "writer");  // ten minutes
  RunSlow(**db);
  (*db)->LogSlowStatements(0, "writer");
  RunSlow(**db);
  EXPECT_EQ(log_.str(), "");
}

}  // namespace
}  // namespace refbroker::storage::internal

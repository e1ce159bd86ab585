// AuditTrail on a real SQLite store: archiving moves the oldest entries into an fsync'd
// JSON-lines file (hashes included) and the chain still verifies from the archive anchor;
// verification names a missing entry; only auditors verify or search, within their alliance.

#include "broker/audit/audit_trail.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "broker/storage/audit_chain.h"
#include "broker/storage/sqlite_store.h"

namespace refbroker::audit {
namespace {

namespace v1 = refbroker::v1;
constexpr Micros kDay = 86400LL * 1000000;
constexpr Micros kNow = 1795000000LL * 1000000;

class FixedClock : public Clock {
 public:
  Micros Now() const override { return kNow; }
};

class AuditTrailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("audit-trail-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    storage::SqliteOptions o;
    o.path = dir_ + "/store.db";
    auto s = storage::SqliteStore::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    trail_ = std::make_unique<AuditTrail>(*store_, clock_, dir_ + "/archive");
    auditor_.id = "AU-1";
    auditor_.role = auth::Role::kAuditor;
    auditor_.alliance = "pingyu";
  }
  void TearDown() override {
    trail_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Append(const std::string& actor, Micros at, const std::string& alliance = "pingyu") {
    storage::AuditRow row;
    row.at = at;
    row.actor = actor;
    row.alliance = alliance;
    row.action = "GetReferral";
    row.subject = "ref-1";
    row.outcome = "OK";
    ASSERT_TRUE(store_->AppendAudit({row}).ok());
  }

  std::string dir_;
  FixedClock clock_;
  std::unique_ptr<storage::SqliteStore> store_;
  std::unique_ptr<AuditTrail> trail_;
  auth::Principal auditor_;
};

TEST_F(AuditTrailTest, ArchivesOldEntriesToAFileAndTheChainStillVerifies) {
  for (int i = 0; i < 7; ++i) Append("old-" + std::to_string(i), kNow - 400 * kDay + i);
  for (int i = 0; i < 3; ++i) Append("new-" + std::to_string(i), kNow - kDay);
  auto archived = trail_->Archive(kNow - 183 * kDay, /*batch=*/4);
  ASSERT_TRUE(archived.ok()) << archived.status();
  EXPECT_EQ(*archived, 7u);
  // Two files (4 + 3 entries), each line an entry with its hashes.
  std::vector<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(dir_ + "/archive")) {
    files.push_back(f.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files, (std::vector<std::string>{"audit-1-4.jsonl", "audit-5-7.jsonl"}));
  std::ifstream in(dir_ + "/archive/audit-5-7.jsonl");
  std::string line;
  std::vector<v1::AuditEntry> entries;
  while (std::getline(in, line)) {
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &entries.emplace_back()).ok());
  }
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].seq(), 5u);
  EXPECT_EQ(entries[2].actor(), "old-6");
  EXPECT_EQ(entries[2].hash().size(), 64u);

  auto v = trail_->Verify(auditor_);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->ok()) << v->problem();
  EXPECT_EQ(v->archived_upto_seq(), 7u);
  EXPECT_EQ(v->checked(), 3u);
  EXPECT_EQ(v->first_seq(), 8u);
  // The archived file's last hash is where the kept chain starts.
  auto kept = store_->ListAudit(storage::AuditQuery());
  EXPECT_EQ(kept->front().prev_hash, entries[2].hash());
}

TEST_F(AuditTrailTest, OnlyAuditorsVerifyAndSearchWithinTheirAlliance) {
  Append("12411723417580001B", kNow);
  Append("41-other-alliance", kNow, "other");
  auth::Principal op = auditor_;
  op.role = auth::Role::kOperator;
  EXPECT_EQ(trail_->Verify(op).status().code(), absl::StatusCode::kPermissionDenied);
  v1::SearchAuditRequest req;
  req.set_subject("ref-1");
  EXPECT_EQ(trail_->Search(op, req).status().code(), absl::StatusCode::kPermissionDenied);
  auto found = trail_->Search(auditor_, req);
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->entries_size(), 1);
  EXPECT_EQ(found->entries(0).actor(), "12411723417580001B");
  req.set_limit(5000);
  EXPECT_EQ(trail_->Search(auditor_, req).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AuditTrailTest, NothingToArchiveLeavesTheStoreAlone) {
  Append("a", kNow);
  auto archived = trail_->Archive(kNow - 183 * kDay);
  ASSERT_TRUE(archived.ok());
  EXPECT_EQ(*archived, 0u);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/archive/audit-1-1.jsonl"));
  EXPECT_TRUE(trail_->Verify(auditor_)->ok());
}

}  // namespace
}  // namespace refbroker::audit

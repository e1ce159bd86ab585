// The audit archive reads the head of the chain, not the whole trail: only a prefix of the
// chain may leave, so the entries it needs are the first ones by sequence. The archive runs in
// the writer's transaction at every start and every archive interval; a search of the trail by
// time read every entry when none was old enough, and held every submit back meanwhile (3.5 s
// with two million entries on this machine).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker/storage/audit_chain.h"
#include "broker/storage/sqlite_store.h"
#include "tests/support/audit_entries.h"
#include "tests/support/read_calls.h"
#include "tests/support/sqlite_store_file.h"

namespace refbroker::storage {
namespace {

AuditRow At(Micros at) {
  return testing::AuditEntry("124117234175811018", "GetReferral", "", "", at);
}

using AuditArchive = testing::SqliteStoreFile;

AuditArchiveSink Keep(std::vector<AuditRow>& archived) {
  return [&archived](const std::vector<AuditRow>& rows) -> absl::StatusOr<std::string> {
    archived.insert(archived.end(), rows.begin(), rows.end());
    return std::string("archive-") + std::to_string(rows.back().seq);
  };
}

TEST_F(AuditArchive, WithNothingOldEnoughReadsTheHeadOfTheChainNotTheTrail) {
  constexpr Micros kNow = testing::kAuditAt;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    for (int batch = 0; batch < 50; ++batch) {  // 50,000 entries, ~3,000 pages of the table
      std::vector<AuditRow> rows(1000, At(kNow));
      ASSERT_TRUE(store->AppendAudit(rows).ok());
    }
  }
  auto store = Open();  // a fresh writer connection: nothing of the trail in its page cache
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->EnsureGroup("124117234175811018/referrals", "his", kNow).ok());  // schema
  std::vector<AuditRow> archived;
  double before = testing::ThreadReadCalls("rb-writer");
  auto n = store->ArchiveAudit(kNow - 1, kNow, 10000, Keep(archived));
  double reads = testing::ThreadReadCalls("rb-writer") - before;
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0u);
  EXPECT_TRUE(archived.empty());
  EXPECT_LT(reads, 20) << "the archive read " << reads << " pages to find nothing to archive";
}

TEST(ArchivablePrefix, StopsAtTheFirstEntryNotOldEnoughAndAtAGap) {
  auto entry = [](uint64_t seq, Micros at) {
    AuditRow row;
    row.seq = seq;
    row.at = at;
    return row;
  };
  EXPECT_EQ(ArchivablePrefix({}, 100), 0u);
  EXPECT_EQ(ArchivablePrefix({entry(1, 10), entry(2, 20), entry(3, 100), entry(4, 30)}, 100), 2u);
  EXPECT_EQ(ArchivablePrefix({entry(7, 10), entry(8, 20), entry(10, 30)}, 100), 2u);
  EXPECT_EQ(ArchivablePrefix({entry(1, 100)}, 100), 0u);  // at the cutoff is not before it
}

}  // namespace
}  // namespace refbroker::storage

// A damaged tail of the store's write-ahead log, under the real broker: SQLite itself drops
// WAL frames whose checksums fail, and with them the transactions they held, without an error.
// The broker must notice that the store came back shorter than what it acknowledged and refuse
// to serve it (never silently serve a shorter queue), with a message that says what to do.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/files.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = refbroker::v1;

// A broker whose WAL is not checkpointed during the test, so that the last transactions live
// only in the WAL's tail; `count` referrals acknowledged; then SIGKILL.
void AcknowledgeThenKill(BrokerProcess& broker, int count, std::vector<std::string>* ids) {
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  refclient::ReferralClient client(*clinic);
  for (int i = 0; i < count; ++i) {
    auto r = client.Submit(
        MakeReferral(kXiyangdian, "tail-" + std::to_string(i), v1::ROUTINE, kPeopleHospital));
    ASSERT_TRUE(r.ok()) << r.status();
    ids->push_back(r->referral().id());
  }
  broker.Kill();
}

BrokerConfig NoCheckpoints() {
  BrokerConfig config;
  config.storage_toml = "checkpoint_interval_ms = 60000\n";
  return config;
}

enum class Damage { kNone, kBitFlip, kTorn };

class TornTail : public ::testing::TestWithParam<Damage> {};

TEST_P(TornTail, AStoreShorterThanWhatItAcknowledgedIsRefusedNeverServed) {
  BrokerProcess broker(NoCheckpoints());
  std::vector<std::string> ids;
  ASSERT_NO_FATAL_FAILURE(AcknowledgeThenKill(broker, 30, &ids));
  std::string wal = broker.db_path() + "-wal";
  ASSERT_TRUE(fs::exists(wal));
  auto size = fs::file_size(wal);
  ASSERT_GT(size, 8192u);
  if (GetParam() == Damage::kBitFlip) {
    // One bit of the last frame's page: its checksum no longer holds.
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size - 100));
    char c;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(size - 100));
    f.put(static_cast<char>(c ^ 0x10));
  } else if (GetParam() == Damage::kTorn) {
    // The last write reached the disk only in part.
    fs::resize_file(wal, size - 3000);
  }
  absl::Status started = broker.Start();
  if (GetParam() == Damage::kNone) {
    ASSERT_TRUE(started.ok()) << started;
    auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
    refclient::ReferralClient client(*clinic);
    for (const auto& id : ids) EXPECT_TRUE(client.Get(id).ok()) << id;
    return;
  }
  // Refused, with the reason and the way out in the log.
  EXPECT_FALSE(started.ok()) << "a store that lost acknowledged writes was served";
  std::string log = ReadAll(broker.log_path());
  EXPECT_NE(log.find("was acknowledged"), std::string::npos) << log;
  EXPECT_NE(log.find("restore the latest backup"), std::string::npos) << log;
  // The operator who puts an older store in place on purpose moves the note aside; then the
  // broker serves what the store holds.
  fs::rename(broker.db_path() + ".acked", broker.db_path() + ".acked.damaged");
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  refclient::ReferralClient client(*clinic);
  EXPECT_TRUE(client.Get(ids.front()).ok());
  EXPECT_FALSE(client.Get(ids.back()).ok()) << "the damaged tail held the last referral";
}

INSTANTIATE_TEST_SUITE_P(Damages, TornTail,
                         ::testing::Values(Damage::kNone, Damage::kBitFlip, Damage::kTorn),
                         [](const auto& param_info) {
                           switch (param_info.param) {
                             case Damage::kNone:
                               return "Undamaged";
                             case Damage::kBitFlip:
                               return "BitFlipInTheLastFrame";
                             default:
                               return "TornLastWrite";
                           }
                         });

}  // namespace
}  // namespace refbroker::testing

// A store file found damaged, under the real broker: the background integrity check latches it
// (health NOT_SERVING, every write DATA_LOSS) and notes it beside the store (<db>.damaged); the
// broker restarted after that (systemd's watchdog restarts a broker that stops feeding it)
// refuses to start on it rather than serve it, and acknowledge writes into it, until the check
// finds the damage again. Restored from a backup, with the note moved aside, it serves again
// with everything the backup held.

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "client/refclient/referral_client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/broker_process.h"
#include "tests/support/files.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace fs = std::filesystem;
namespace v1 = refbroker::v1;

grpc::health::v1::HealthCheckResponse::ServingStatus Health(refclient::Connection& conn) {
  auto stub = grpc::health::v1::Health::NewStub(conn.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  grpc::health::v1::HealthCheckResponse resp;
  stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp);
  return resp.status();
}

TEST(DamagedStore, IsNotServedAgainAfterARestartUntilItIsRestored) {
  BrokerConfig config;
  if (config.postgres) GTEST_SKIP() << "the integrity check is the SQLite store's";
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok()) << broker.log_path();
  std::vector<std::string> acknowledged;
  {
    auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
    refclient::ReferralClient client(*clinic);
    for (int i = 0; i < 10; ++i) {
      auto out = client.Submit(
          MakeReferral(kXiyangdian, "before-" + std::to_string(i), v1::ROUTINE, kPeopleHospital));
      ASSERT_TRUE(out.ok()) << out.status();
      acknowledged.push_back(out->referral().id());
    }
  }
  ASSERT_EQ(broker.Stop(), 0);
  // The backup an operator would have taken (the store was stopped cleanly: one file).
  const std::string db = broker.db_path();
  const std::string backup = broker.dir() + "/backup.db";
  fs::copy_file(db, backup);

  // A table of several levels that nothing at start-up reads, whose root page is then
  // overwritten: the file opens and the broker serves; only the check finds it.
  ASSERT_EQ(broker.ExecSql("CREATE TABLE ballast(v BLOB); WITH RECURSIVE c(i) AS (SELECT 1 UNION "
                           "ALL SELECT i+1 FROM c WHERE i<3000) INSERT INTO ballast SELECT "
                           "randomblob(300) FROM c;"),
            "");
  OverwriteRootPage(db, "ballast");

  ASSERT_TRUE(broker.Start().ok()) << broker.log_path();
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  for (int i = 0; i < 200 && Health(*clinic) != grpc::health::v1::HealthCheckResponse::NOT_SERVING;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(Health(*clinic), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  refclient::RetryPolicy once;
  once.max_attempts = 1;
  auto refused = refclient::ReferralClient(*clinic, once)
                     .Submit(MakeReferral(kXiyangdian, "after", v1::ROUTINE, kPeopleHospital));
  EXPECT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();
  const std::string note = db + ".damaged";
  EXPECT_TRUE(fs::exists(note));
  EXPECT_NE(ReadAll(broker.log_path()).find(note), std::string::npos);

  // Restarted (the watchdog's restart, or an operator's): it does not serve that file again.
  clinic.reset();
  broker.Kill();
  absl::Status again = broker.Start();
  EXPECT_FALSE(again.ok()) << "a store noted damaged was served again";
  EXPECT_NE(ReadAll(broker.log_path()).find("is not served again"), std::string::npos);

  // Restored as OPERATIONS.md section 5 says: the damaged files aside, the backup in place.
  for (const char* suffix : {"", ".acked", ".damaged", "-wal", "-shm"}) {
    if (fs::exists(db + suffix)) fs::rename(db + suffix, db + suffix + ".broken");
  }
  fs::copy_file(backup, db);
  ASSERT_TRUE(broker.Start().ok()) << broker.log_path();
  clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  EXPECT_EQ(Health(*clinic), grpc::health::v1::HealthCheckResponse::SERVING);
  refclient::ReferralClient client(*clinic);
  for (const auto& id : acknowledged) EXPECT_TRUE(client.Get(id).ok()) << id;
  EXPECT_TRUE(
      client.Submit(MakeReferral(kXiyangdian, "restored", v1::ROUTINE, kPeopleHospital)).ok());
}

}  // namespace
}  // namespace refbroker::testing

// What the deployment relies on, with the real binary: the systemd unit verifies; the broker
// tells systemd READY=1 only once it serves, and feeds the watchdog; an online backup taken
// during traffic holds every acknowledged referral and a broker started on it serves them.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

TEST(Deployment, TheSystemdUnitVerifies) {
  // The unit names the installed binary; verify checks that it exists, so the copy checked
  // here points at the one just built. Nothing else is changed.
  std::ifstream in(std::string(REFBROKER_SOURCE_DIR) + "/deploy/refbroker.service");
  std::stringstream unit;
  unit << in.rdbuf();
  std::string text = std::regex_replace(unit.str(), std::regex("/usr/local/bin/refbroker"),
                                        std::string(REFBROKER_BINARY));
  std::string dir = std::filesystem::temp_directory_path() / ("unit-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/refbroker.service") << text;
  std::string out;
  EXPECT_EQ(RunCommand("systemd-analyze verify " + dir + "/refbroker.service", &out), 0) << out;
  EXPECT_NE(text.find("Type=notify"), std::string::npos);
  EXPECT_NE(text.find("WatchdogSec="), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Deployment, ReadyIsNotifiedOnlyOnceServingAndTheWatchdogIsFed) {
  std::string sock_path =
      std::filesystem::temp_directory_path() / ("notify-" + std::to_string(getpid()));
  std::filesystem::remove(sock_path);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock_path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  BrokerConfig config;
  config.env = {"NOTIFY_SOCKET=" + sock_path, "WATCHDOG_USEC=200000"};
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());
  std::vector<std::string> messages;
  bool ready = false;
  int watchdogs = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until && watchdogs < 3) {
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    std::string msg(buf, static_cast<size_t>(n));
    messages.push_back(msg);
    if (msg.find("READY=1") != std::string::npos) {
      ready = true;
      // Ready means serving: a client gets an answer right away.
      auto conn = ConnectAs(broker.address(), "xiyangdian-thc");
      auto out = refclient::ReferralClient(*conn).Submit(
          MakeReferral(kXiyangdian, "after-ready", v1::ROUTINE, kPeopleHospital));
      EXPECT_TRUE(out.ok()) << out.status();
    }
    if (msg.find("WATCHDOG=1") != std::string::npos) {
      EXPECT_TRUE(ready) << "the watchdog is fed only after READY";
      watchdogs++;
    }
  }
  close(fd);
  std::filesystem::remove(sock_path);
  EXPECT_TRUE(ready);
  EXPECT_GE(watchdogs, 3);
  EXPECT_EQ(broker.Stop(), 0);
}

// The backup of the store the broker runs on, taken while it serves: `refbroker backup` of the
// SQLite file, or pg_dump of the broker's schema (OPERATIONS.md, sections 5 and 8). A broker
// started on the restored copy serves every referral acknowledged before the backup began.
TEST(Deployment, AnOnlineBackupDuringTrafficHoldsEveryAcknowledgedReferral) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  auto conn = ConnectAs(broker.address(), "xiyangdian-thc");
  refclient::ReferralClient client(*conn);
  std::vector<std::string> acknowledged;
  for (int i = 0; i < 50; ++i) {
    auto out = client.Submit(
        MakeReferral(kXiyangdian, "before-" + std::to_string(i), v1::ROUTINE, kPeopleHospital));
    ASSERT_TRUE(out.ok()) << out.status();
    acknowledged.push_back(out->referral().id());
  }
  std::atomic<bool> stop{false};
  std::thread traffic([&] {  // the broker keeps serving while the copy is taken
    for (int i = 0; !stop; ++i) {
      (void)client.Submit(
          MakeReferral(kXiyangdian, "during-" + std::to_string(i), v1::ROUTINE, kPeopleHospital));
    }
  });
  const std::string copy = broker.dir() + (broker.postgres() ? "/backup.dump" : "/backup.db");
  const std::string restore_db = "restore_" + std::to_string(getpid());
  std::string restore_conninfo = TestClusterConninfo();
  std::string out;
  int rc = 0;
  if (broker.postgres()) {
    rc = RunCommand("pg_dump --format=custom --schema=" + broker.pg_schema() + " --file " + copy +
                        " --dbname '" + TestClusterConninfo() + "'",
                    &out);
  } else {
    rc = RunCommand(
        std::string(REFBROKER_BINARY) + " backup --data " + broker.db_path() + " --out " + copy,
        &out);
  }
  stop = true;
  traffic.join();
  ASSERT_EQ(rc, 0) << out;
  if (broker.postgres()) {
    // Restored into a database of its own, as onto another server.
    size_t at = restore_conninfo.find("dbname=refbroker");
    ASSERT_NE(at, std::string::npos) << restore_conninfo;
    restore_conninfo.replace(at, 16, "dbname=" + restore_db);
    ASSERT_EQ(broker.ExecSql("DROP DATABASE IF EXISTS " + restore_db), "");
    ASSERT_EQ(broker.ExecSql("CREATE DATABASE " + restore_db), "");
    out.clear();
    ASSERT_EQ(
        RunCommand("pg_restore --exit-on-error --dbname '" + restore_conninfo + "' " + copy, &out),
        0)
        << out;
  } else {
    EXPECT_NE(out.find("quick_check ok"), std::string::npos) << out;
    out.clear();
    EXPECT_NE(RunCommand(std::string(REFBROKER_BINARY) + " backup --data " + broker.db_path() +
                             " --out " + copy,
                         &out),
              0)
        << "an existing copy is never overwritten";
  }

  // Restore: a broker started on the copy serves every referral acknowledged before it.
  {
    BrokerConfig config;
    if (broker.postgres()) {
      config.pg_conninfo = restore_conninfo;
      config.pg_schema = broker.pg_schema();
    }
    BrokerProcess restored(config);
    if (!broker.postgres()) std::filesystem::copy_file(copy, restored.db_path());
    ASSERT_TRUE(restored.Start().ok()) << restored.log_path();
    auto rconn = ConnectAs(restored.address(), "xiyangdian-thc");
    refclient::ReferralClient rclient(*rconn);
    for (const auto& id : acknowledged) EXPECT_TRUE(rclient.Get(id).ok()) << id;
  }
  if (broker.postgres()) {
    EXPECT_EQ(broker.ExecSql("DROP DATABASE " + restore_db + " WITH (FORCE)"), "");
  }
}

}  // namespace
}  // namespace refbroker::testing

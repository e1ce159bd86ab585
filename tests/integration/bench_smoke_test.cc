// The benchmark's short version in the default suite: refbench against the real broker, every
// mode, the limits beside them, idle subscribers, and the loss check. It checks that the tool
// works and reports what it measured; the targets are measured by scripts/bench, not here.

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

TEST(BenchSmoke, RefbenchRunsEveryModeBesideItsLimitsAndLosesNothing) {
  BrokerConfig config;
  config.extra_toml = "[limits]\ncalls_per_second = 1000000\nburst = 1000000\nmax_streams = 512\n";
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());
  std::string out;
  int rc = RunCommand(
      std::string(REFBENCH_BINARY) + " --broker " + broker.address() + " --broker-pid " +
          std::to_string(broker.pid()) + " --data-dir " + broker.dir() + " --certs " + CertsDir() +
          " --registry " + REFBROKER_SOURCE_DIR + "/deploy/registry.toml" +
          " --seconds 0.5 --disk-seconds 0.2 --runs 1 --idle-subscribers 20 --backlog 2000",
      &out);
  std::printf("%s", out.c_str());
  ASSERT_EQ(rc, 0) << out;
  for (const char* line :
       {"disk   write+fdatasync", "no-op  stream", "relay  stream", "broker stream", "no-op  unary",
        "broker unary", "broker concurrent", "stream: durable submits/s vs no-op stream/s",
        "stream: durable submits/s vs no-op relay/s", "unary: submits/s vs disk fdatasync/s",
        "64 callers: submits/s vs disk fdatasync/s", "20 idle subscribers:",
        "broker peak resident memory", "backlog: 64 callers/s with it vs before",
        "backlog: broker resident MiB holding it", "backlog queued=", "lost=0\n"}) {
    EXPECT_NE(out.find(line), std::string::npos) << "missing: " << line;
  }
  EXPECT_EQ(out.find("refused"), std::string::npos) << "a valid submission was refused";
  // Every submission the broker acknowledged is in its store.
  EXPECT_GT(broker.CountRows("referrals"), 0);

  // The backlog is still queued after a restart (nobody consumed it), and the restarted
  // broker's start-up work over it ends: it stops cleanly when told to.
  size_t at = out.find("backlog queued=");
  ASSERT_NE(at, std::string::npos);
  long queued = std::stol(out.substr(at + std::strlen("backlog queued=")));
  EXPECT_GE(queued, 2000);
  ASSERT_EQ(broker.Stop(), 0);
  ASSERT_TRUE(broker.Start().ok());
  EXPECT_EQ(broker.CountRows("group_messages WHERE state < 2"), queued);
  EXPECT_EQ(broker.Stop(), 0);
}

}  // namespace
}  // namespace refbroker::testing

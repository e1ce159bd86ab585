// Privacy: after a full scenario (refsim's referral journeys, results, re-tests, consults and
// readings, escalations and dead letters, at debug log level), the broker's log names none of
// the patients: no name, resident ID or phone number that refsim made up appears in it.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/support/broker_process.h"
#include "tests/support/files.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

TEST(Privacy, AfterAFullScenarioTheLogsNameNoPatient) {
  BrokerConfig config;
  config.log_level = "debug";
  config.emergency_deadline_s = 2;  // undecided emergencies escalate within the run
  config.ack_deadline_ms = 30000;
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());
  std::string patients = broker.dir() + "/patients.tsv";
  std::string out;
  int rc = RunCommand(std::string(REFSIM_BINARY) + " --broker " + broker.address() + " --certs " +
                          CertsDir() + " --registry " + REFBROKER_SOURCE_DIR +
                          "/deploy/registry.toml --rate 20 --duration 6 --drain 15" +
                          " --refuse-share 0.02 --seed 7 --patients-out " + patients,
                      &out);
  ASSERT_EQ(rc, 0) << out;
  // The operator looks around too (lists and one journey).
  std::string ignored;
  RunRefctl(broker.address(), "referrals --limit 20", &ignored);
  RunRefctl(broker.address(), "late", &ignored);
  ASSERT_EQ(broker.Stop(), 0);
  std::string log = ReadAll(broker.log_path());
  ASSERT_GT(log.size(), 1000u) << "the broker logged the scenario";

  std::istringstream lines(ReadAll(patients));
  std::string line;
  int checked = 0, values = 0;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string value;
    while (std::getline(fields, value, '\t')) {
      if (value.empty()) continue;
      ++values;
      EXPECT_EQ(log.find(value), std::string::npos) << "the broker log contains '" << value << "'";
    }
    ++checked;
  }
  std::printf(
      "privacy: %d patients, %d values (names, resident IDs, phones) searched in %zu "
      "bytes of debug log: none found\n",
      checked, values, log.size());
  EXPECT_GT(checked, 25);  // the scenario ran: ~120 patients alone, a few dozen under ASan and load
}

}  // namespace
}  // namespace refbroker::testing

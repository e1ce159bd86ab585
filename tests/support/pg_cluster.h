#pragma once
// The throw-away PostgreSQL cluster of the tests (tests/support/pg-cluster.sh, started by the
// pg_cluster ctest fixture): its connection string, read from the state file it writes.

#include <fstream>
#include <string>

namespace refbroker::testing {

// "" when no cluster runs (the test then fails, naming REFBROKER_PG_STATE).
inline std::string TestClusterConninfo() {
  std::ifstream in(REFBROKER_PG_STATE);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("conninfo=", 0) == 0) return line.substr(9);
  }
  return "";
}

}  // namespace refbroker::testing

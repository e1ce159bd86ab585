#pragma once
// BrokerProcess: the real refbroker binary, started by a test on a loopback port with real mTLS
// (the test PKI in REFBROKER_TEST_CERTS) and a fresh SQLite file in a temporary directory.

#include <sys/types.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "tests/support/pg_cluster.h"

namespace refbroker::testing {

struct BrokerConfig {
  int ack_deadline_ms = 1000;
  int max_attempts = 3;
  int nack_retry_delay_ms = 0;
  int drain_seconds = 2;
  int64_t emergency_deadline_s = 600;
  int64_t urgent_deadline_s = 7200;
  int64_t routine_deadline_s = 172800;
  // [[referral.reroute]] lines: {from, specialty, to}.
  std::vector<std::array<std::string, 3>> reroutes;
  std::string log_level = "info";
  // The registry file; empty = deploy/registry.toml.
  std::string registry_path;
  // Extra environment of the broker process, e.g. "NOTIFY_SOCKET=/tmp/x".
  std::vector<std::string> env;
  // Extra keys of [delivery], e.g. "retention_seconds = 1\n".
  std::string delivery_toml;
  // Extra keys of [storage], e.g. "checkpoint_interval_ms = 60000\n".
  std::string storage_toml;
  // The broker's ca.crt, broker.crt and broker.key: empty = the test PKI (CertsDir()).
  std::string tls_dir;
  // [tls] crl, if any.
  std::string tls_crl;
  // Appended to the generated refbroker.toml, e.g. "[consult.accept]\nemergency_s = 2\n".
  std::string extra_toml;
  // The store: SQLite in the broker's directory, or (REFBROKER_TEST_STORE=postgres, set by the
  // ctest registrations of the suites that run on both) a schema of its own on the test
  // cluster. Brokers that share a database name the same pg_schema.
  bool postgres = TestStoreIsPostgres();
  // SQLite: the store's file; empty = refbroker.db in the broker's directory (a benchmark points
  // a broker at a store it loaded itself).
  std::string sqlite_path;
  std::string pg_schema;    // empty = one derived from the broker's directory
  std::string pg_conninfo;  // empty = the shared test cluster's
  static bool TestStoreIsPostgres();
};

// Writes a registry of two alliances to `path`: deploy/registry.toml (Pingyu's) and the
// neighbouring county's (tests/integration/neighbour-registry.toml), whose text first gets
// `neighbour_edits` ({from, to} replacements), e.g. a partners line for one of its clinics.
void WriteTwoAllianceRegistry(
    const std::string& path,
    const std::vector<std::pair<std::string, std::string>>& neighbour_edits = {});

// Drops a schema of the test cluster (one that several brokers shared).
void DropTestSchema(const std::string& schema);

class BrokerProcess {
 public:
  // A fresh data directory under the system temp directory.
  explicit BrokerProcess(BrokerConfig config = BrokerConfig());
  ~BrokerProcess();  // SIGKILLs a running broker and removes the directory
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;

  // Starts the broker and waits until it listens. The first start picks a free port; later
  // starts reuse it, so clients reconnect to the same address.
  absl::Status Start();
  // SIGTERM and wait (clean drain); returns the exit code.
  int Stop();
  // SIGKILL and wait: a crash.
  void Kill();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  int status_port() const { return status_port_; }
  const std::string& dir() const { return dir_; }
  std::string db_path() const {
    return config_.sqlite_path.empty() ? dir_ + "/refbroker.db" : config_.sqlite_path;
  }
  // Rows of `table` in the broker's store, read beside the running broker (-1 on error);
  // `table` may carry a condition ("group_messages WHERE state < 2").
  int64_t CountRows(const char* table) const;
  // Runs SQL statements on the broker's store directly (as someone with access to the database
  // would); returns "" or the error.
  std::string ExecSql(const std::string& sql) const;
  bool postgres() const { return config_.postgres; }
  const std::string& pg_schema() const { return pg_schema_; }
  std::string log_path() const { return dir_ + "/broker.log"; }

 private:
  void WriteConfig();

  BrokerConfig config_;
  std::string dir_;
  std::string pg_schema_;
  pid_t pid_ = -1;
  int port_ = 0;
  int metrics_port_ = 0;
  int status_port_ = 0;
};

// Paths of the test PKI.
std::string CertsDir();
std::string CertPath(const std::string& stem);
std::string KeyPath(const std::string& stem);

}  // namespace refbroker::testing

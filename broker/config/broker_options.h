#pragma once
// BrokerOptions: the whole configuration of one refbroker process, parsed once from TOML
// (deploy/refbroker.toml documents every key) and validated in one place. Command-line flags
// override individual keys (broker/main.cc).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace refbroker::config {

struct ServerOptions {
  std::string listen = "127.0.0.1:7443";  // host:port; port 0 picks a free one
  // If set, "<grpc port> <metrics port> <status port>\n" is written here once listening.
  std::string port_file;
  std::string metrics_listen = "127.0.0.1:9464";  // Prometheus /metrics; empty disables
  std::string status_listen = "127.0.0.1:9443";   // HTTPS status page (mTLS); empty disables
  int max_message_bytes = 1 << 20;  // larger requests get RESOURCE_EXHAUSTED from gRPC
  int workers = 32;                 // threads that run blocking store calls
  int drain_seconds = 10;           // SIGTERM: time given to in-flight calls
};

struct TlsOptions {
  std::string ca;    // CA that signs client certificates (PEM)
  std::string cert;  // broker certificate chain (PEM)
  std::string key;   // broker private key (PEM)
  std::string crl;   // optional: the CA's certificate revocation list (PEM; certs/revoke-cert.sh)
};

struct StorageOptions {
  std::string engine = "sqlite";      // sqlite (embedded, one broker) or postgres
  std::string path = "refbroker.db";  // sqlite: the database file
  // postgres: a libpq connection string ("host=db port=5432 dbname=refbroker user=refbroker");
  // keep the password out of it (PGPASSFILE or PGPASSWORD in the service's environment).
  std::string conninfo;
  std::string schema = "refbroker";  // postgres: the PostgreSQL schema holding the tables
  int readers = 4;                   // read connections
  int max_batch = 256;
  int checkpoint_interval_ms = 20;  // WAL checkpoints on their own thread; 0 = in the writer
  int slow_statement_ms = 250;      // sqlite: log statements slower than this; 0 = off
};

struct DeliveryOptions {
  int ack_deadline_ms = 30000;     // unacked messages are redelivered after this
  int max_attempts = 5;            // then they move to the dead-letter list
  int nack_retry_delay_ms = 1000;  // a nacked message is ready again after this
  int retention_hours = 168;       // acked messages are pruned after this
  int retention_seconds = 0;       // when set, replaces retention_hours (small deployments, tests)
  int prune_interval_s = 300;
  int max_window = 1000;  // largest window a subscriber may ask for
  // Threads that run the subscriptions' store calls, apart from server.workers: a delivery
  // never waits behind the calls queued there.
  int workers = 4;
};

// Where an escalated referral is re-routed: from a receiver, for a specialty ("" = any).
struct RerouteOption {
  std::string from;
  std::string specialty;
  std::string to;
};

struct ReferralOptions {
  // Decision deadlines by priority: past them a referral is ESCALATED.
  int64_t emergency_deadline_s = 10 * 60;
  int64_t urgent_deadline_s = 2 * 3600;
  int64_t routine_deadline_s = 48 * 3600;
  std::vector<RerouteOption> reroutes;
};

// Seconds allowed per priority.
struct PriorityDeadlineOption {
  int64_t emergency_s = 0;
  int64_t urgent_s = 0;
  int64_t routine_s = 0;
};

struct ConsultOptions {
  // [consult.accept]: until the target accepts (telemedicine rules: EMERGENCY 10 minutes).
  PriorityDeadlineOption accept{10 * 60, 2 * 3600, 24 * 3600};
  // [consult.report]: from acceptance until the report; [consult.report.<SERVICE>] per service.
  PriorityDeadlineOption report{2 * 3600, 24 * 3600, 24 * 3600};
  std::map<std::string, PriorityDeadlineOption> report_by_service{
      {"ECG_READING", {30 * 60, 24 * 3600, 24 * 3600}},
      {"IMAGING_READING", {60 * 60, 24 * 3600, 48 * 3600}},
  };
};

struct RecognitionOptions {
  std::string catalogue_path = "recognition.toml";  // versioned; reloaded on SIGHUP
  int max_result_kb = 512;                          // a larger result record is RESOURCE_EXHAUSTED
  int max_waveform_kb = 256;      // an ECG waveform above this is RESOURCE_EXHAUSTED
  int result_retention_days = 0;  // result records received longer ago are pruned; 0 = keep
};

// [audit]: the hash-chained audit trail. Entries older than retention_days (at least 183:
// six months) are moved to files in archive_dir, never dropped.
struct AuditOptions {
  int retention_days = 400;
  std::string archive_dir = "audit-archive";  // relative to the config file's directory
  int archive_interval_s = 3600;
};

// [limits]: per principal, so that one flooding institution does not slow the others.
struct LimitOptions {
  double calls_per_second = 500;
  double burst = 1000;
  int max_streams = 64;
};

struct LogOptions {
  std::string level = "info";   // trace, debug, info, warn, error
  std::string format = "text";  // text or json
};

struct BrokerOptions {
  ServerOptions server;
  TlsOptions tls;
  StorageOptions storage;
  DeliveryOptions delivery;
  ReferralOptions referral;
  ConsultOptions consult;
  RecognitionOptions recognition;
  AuditOptions audit;
  LimitOptions limits;
  LogOptions log;
  std::string registry_path = "registry.toml";

  // Parses a TOML file; relative paths in it are resolved against the file's directory.
  static absl::StatusOr<BrokerOptions> LoadFile(const std::string& path);
  static absl::StatusOr<BrokerOptions> LoadString(const std::string& text,
                                                  const std::string& base_dir);
  // Checks ranges and required keys; errors name the key.
  absl::Status Validate() const;
};

}  // namespace refbroker::config

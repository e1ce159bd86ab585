#pragma once
// File: client/refclient/connection.h
//
// Connection: a gRPC channel to refbroker over mutual TLS, made from PEM files.
// Every refclient call takes a Connection. Thread-safe; share one per process and principal.
//
// Example (a township clinic's HIS):
//
//   refclient::ConnectionOptions opts;
//   opts.targets = {"county-broker.example:7443"};
//   opts.ca_file = "/etc/refbroker/ca.crt";
//   opts.cert_file = "/etc/refbroker/xiyangdian-thc.crt";   // CN = our credit code
//   opts.key_file = "/etc/refbroker/xiyangdian-thc.key";
//   auto conn = refclient::Connection::Create(opts);
//   if (!conn.ok()) { /* bad files */ }
//   refclient::ReferralClient referrals(**conn);

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace refclient {

struct ConnectionOptions {
  std::vector<std::string> targets;  ///< "host:port" of each broker; the first is used first
  std::string ca_file;               ///< CA that signed the broker certificate
  std::string cert_file;             ///< this principal's client certificate
  std::string key_file;              ///< its private key
  std::string server_name_override;  ///< TLS name to expect, if the target is an IP/alias
};

/// Options for a principal whose files lie in one directory, as certs/make-dev-certs.sh writes
/// them: DIR/ca.crt, DIR/NAME.crt and DIR/NAME.key.
ConnectionOptions CertDirOptions(std::vector<std::string> targets, const std::string& dir,
                                 const std::string& name);

/// A mutual-TLS channel to one of the configured brokers.
class Connection {
 public:
  /// Reads the PEM files and prepares channels. Fails with NOT_FOUND naming an unreadable file.
  static absl::StatusOr<std::unique_ptr<Connection>> Create(const ConnectionOptions& options);

  /// The channel to the current broker.
  std::shared_ptr<grpc::Channel> channel();
  /// True when more than one broker is configured: a call then fails fast on a broker that
  /// cannot be reached (UNAVAILABLE) instead of waiting for it, and moves on with Failover.
  bool has_alternatives() const { return options_.targets.size() > 1; }
  /// Moves to the next configured broker after `failed`, the channel a call failed on, could
  /// not reach its broker; returns the channel to use now. Callers sharing this connection
  /// that saw the same broker fail move on once, not once each (which could bring them back).
  std::shared_ptr<grpc::Channel> Failover(const std::shared_ptr<grpc::Channel>& failed);
  const std::string& current_target();

 private:
  Connection() = default;
  std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target);

  ConnectionOptions options_;
  grpc::SslCredentialsOptions ssl_;
  std::mutex mu_;
  size_t current_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
};

/// grpc::Status → absl::Status (same codes).
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace refclient

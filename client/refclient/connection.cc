#include "client/refclient/connection.h"

#include <fstream>
#include <sstream>

namespace refclient {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(std::string(what) + ": cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

ConnectionOptions CertDirOptions(std::vector<std::string> targets, const std::string& dir,
                                 const std::string& name) {
  ConnectionOptions o;
  o.targets = std::move(targets);
  o.ca_file = dir + "/ca.crt";
  o.cert_file = dir + "/" + name + ".crt";
  o.key_file = dir + "/" + name + ".key";
  return o;
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Create(const ConnectionOptions& options) {
  if (options.targets.empty()) return absl::InvalidArgumentError("targets: at least one broker");
  std::unique_ptr<Connection> c(new Connection());
  c->options_ = options;
  auto ca = ReadFile(options.ca_file, "ca_file");
  if (!ca.ok()) return ca.status();
  auto cert = ReadFile(options.cert_file, "cert_file");
  if (!cert.ok()) return cert.status();
  auto key = ReadFile(options.key_file, "key_file");
  if (!key.ok()) return key.status();
  c->ssl_.pem_root_certs = *ca;
  c->ssl_.pem_cert_chain = *cert;
  c->ssl_.pem_private_key = *key;
  c->channel_ = c->MakeChannel(options.targets.front());
  return c;
}

std::shared_ptr<grpc::Channel> Connection::MakeChannel(const std::string& target) {
  grpc::ChannelArguments args;
  if (!options_.server_name_override.empty()) {
    args.SetSslTargetNameOverride(options_.server_name_override);
  }
  // Reconnect quickly after a broker restart (the first retry after 100 ms, never more than
  // 2 s apart), but give each attempt time to finish: gRPC takes the *minimum* reconnect
  // backoff as the least time a connection attempt (TCP, TLS handshake, HTTP/2 SETTINGS) may
  // take before it is abandoned. At 100 ms a handshake on a slow township link, or on a
  // loaded machine (an ASan CI run: "connection attempt timed out before receiving SETTINGS
  // frame"), failed every first attempt and the call with it.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetMaxReceiveMessageSize(16 << 20);
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl_), args);
}

std::shared_ptr<grpc::Channel> Connection::channel() {
  std::lock_guard<std::mutex> lock(mu_);
  return channel_;
}

std::shared_ptr<grpc::Channel> Connection::Failover(const std::shared_ptr<grpc::Channel>& failed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.targets.size() > 1 && failed == channel_) {
    current_ = (current_ + 1) % options_.targets.size();
    channel_ = MakeChannel(options_.targets[current_]);
  }
  return channel_;
}

const std::string& Connection::current_target() {
  std::lock_guard<std::mutex> lock(mu_);
  return options_.targets[current_];
}

}  // namespace refclient

#pragma once
// StatusPageServer: the operators' read-only status page, over HTTPS (Boost.Beast) on its own
// listener and thread, behind the same client-certificate check as the gRPC API: the TLS
// handshake requires a certificate signed by the broker's client CA, and the certificate's CN
// must name an operator or auditor of the registry (others get 403). GET / is the page (queue
// table and today's headline figures, refreshed every 10 s); GET /healthz is the health.
// The TLS material is the API's (tls::ServerTls): a certificate its CRL lists is refused at the
// handshake, and ReloadTls() (SIGHUP) serves new handshakes from the reloaded material.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "broker/auth/registry.h"
#include "broker/tls/server_tls.h"

namespace refbroker::observability {

class StatusPageServer {
 public:
  using RenderFn = std::function<absl::StatusOr<std::string>(const auth::Principal& who)>;

  // Binds `listen` ("host:port", port 0 = any free port) and starts serving.
  static absl::StatusOr<std::unique_ptr<StatusPageServer>> Start(const std::string& listen,
                                                                 const tls::ServerTls& tls,
                                                                 const auth::Registry& registry,
                                                                 RenderFn render);
  ~StatusPageServer();  // stops and joins
  int port() const { return port_; }
  // New handshakes use the TLS material as it is now (after tls::ServerTls::Reload).
  absl::Status ReloadTls();

 private:
  class Session;
  StatusPageServer(const tls::ServerTls& tls, const auth::Registry& registry, RenderFn render);
  void Accept();
  absl::StatusOr<std::shared_ptr<boost::asio::ssl::context>> MakeContext() const;
  std::shared_ptr<boost::asio::ssl::context> context() const;

  const auth::Registry& registry_;
  RenderFn render_;
  boost::asio::io_context io_;
  const tls::ServerTls& tls_;
  mutable std::mutex ssl_mu_;
  std::shared_ptr<boost::asio::ssl::context> ssl_;  // replaced by ReloadTls
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace refbroker::observability

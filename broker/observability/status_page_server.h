#pragma once
// StatusPageServer: the operators' read-only status page, over HTTPS (Boost.Beast) on its own
// listener and thread, behind the same client-certificate check as the gRPC API: the TLS
// handshake requires a certificate signed by the broker's client CA, and the certificate's CN
// must name an operator or auditor of the registry (others get 403). GET / is the page (queue
// table and today's headline figures, refreshed every 10 s); GET /healthz is the health.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "broker/auth/registry.h"

namespace refbroker::observability {

struct StatusPageTls {
  std::string ca_pem, cert_pem, key_pem;
};

class StatusPageServer {
 public:
  using RenderFn = std::function<absl::StatusOr<std::string>(const auth::Principal& who)>;

  // Binds `listen` ("host:port", port 0 = any free port) and starts serving.
  static absl::StatusOr<std::unique_ptr<StatusPageServer>> Start(const std::string& listen,
                                                                 const StatusPageTls& tls,
                                                                 const auth::Registry& registry,
                                                                 RenderFn render);
  ~StatusPageServer();  // stops and joins
  int port() const { return port_; }

 private:
  class Session;
  StatusPageServer(const auth::Registry& registry, RenderFn render);
  void Accept();

  const auth::Registry& registry_;
  RenderFn render_;
  boost::asio::io_context io_;
  boost::asio::ssl::context ssl_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace refbroker::observability

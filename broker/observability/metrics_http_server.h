#pragma once
// MetricsHttpServer: a small HTTP/1.1 server (Boost.Beast) on its own thread serving
// GET /metrics (Prometheus text) and GET /healthz (200 "SERVING" or 503 with the error).
// Plain HTTP, meant for a loopback or management-network address.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "broker/observability/metrics.h"

namespace refbroker::observability {

class MetricsHttpServer {
 public:
  using HealthFn = std::function<absl::Status()>;

  // Binds `listen` ("host:port", port 0 = any free port) and starts serving.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& listen,
                                                                  Metrics& metrics,
                                                                  HealthFn health);
  ~MetricsHttpServer();  // stops and joins
  int port() const { return port_; }

 private:
  MetricsHttpServer(Metrics& metrics, HealthFn health)
      : metrics_(metrics), health_(std::move(health)), acceptor_(io_) {}
  void Accept();
  void Serve(boost::asio::ip::tcp::socket socket);

  Metrics& metrics_;
  HealthFn health_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace refbroker::observability

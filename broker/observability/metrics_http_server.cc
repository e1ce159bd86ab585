#include "broker/observability/metrics_http_server.h"

#include <spdlog/spdlog.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/str_cat.h"
#include "broker/observability/listen.h"

namespace refbroker::observability {
namespace {
namespace http = boost::beast::http;
using boost::asio::ip::tcp;
}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, Metrics& metrics, HealthFn health) {
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer(metrics, std::move(health)));
  auto port = ListenOn(server->acceptor_, listen, "server.metrics_listen");
  if (!port.ok()) return port.status();
  server->port_ = *port;
  server->Accept();
  server->thread_ = std::thread([s = server.get()] { s->io_.run(); });
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void MetricsHttpServer::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) return;
    Serve(std::move(socket));
    Accept();
  });
}

// One request per connection, served synchronously on the server thread: scrapes are rare and
// small. A read timeout keeps a stuck client from holding the thread.
void MetricsHttpServer::Serve(tcp::socket socket) {
  boost::beast::tcp_stream stream(std::move(socket));
  stream.expires_after(std::chrono::seconds(5));
  boost::beast::flat_buffer buffer;
  http::request<http::string_body> req;
  boost::system::error_code ec;
  http::read(stream, buffer, req, ec);
  if (ec) return;
  http::response<http::string_body> res;
  res.version(req.version());
  res.keep_alive(false);
  if (req.method() == http::verb::get && req.target() == "/metrics") {
    res.result(http::status::ok);
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.body() = metrics_.Expose();
  } else if (req.method() == http::verb::get && req.target() == "/healthz") {
    absl::Status h = health_();
    res.result(h.ok() ? http::status::ok : http::status::service_unavailable);
    res.set(http::field::content_type, "text/plain");
    res.body() = h.ok() ? "SERVING\n" : absl::StrCat("NOT_SERVING ", h.message(), "\n");
  } else {
    res.result(http::status::not_found);
    res.body() = "not found\n";
  }
  res.prepare_payload();
  http::write(stream, res, ec);
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace refbroker::observability

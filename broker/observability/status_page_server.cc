#include "broker/observability/status_page_server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/strings/str_cat.h"
#include "broker/observability/listen.h"

namespace refbroker::observability {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = boost::asio::ssl;
using boost::asio::ip::tcp;

// The subject CN of the verified peer certificate; "" when there is none.
std::string PeerCommonName(SSL* ssl_handle) {
  X509* cert = SSL_get1_peer_certificate(ssl_handle);
  if (cert == nullptr) return "";
  char cn[256] = {0};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_free(cert);
  return n > 0 ? std::string(cn, static_cast<size_t>(n)) : "";
}

}  // namespace

// One connection: handshake, one request, one answer, close. Every step has a deadline.
class StatusPageServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(StatusPageServer& server, tcp::socket socket)
      : server_(server), ssl_(server.context()), stream_(std::move(socket), *ssl_) {}

  void Run() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(10));
    stream_.async_handshake(ssl::stream_base::server,
                            [self = shared_from_this()](beast::error_code ec) {
                              if (!ec) self->Read();
                            });
  }

 private:
  void Read() {
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->Answer();
                     });
  }

  void Answer() {
    response_.version(request_.version());
    response_.keep_alive(false);
    response_.set(http::field::cache_control, "no-store");
    std::string cn = PeerCommonName(stream_.native_handle());
    const auth::Principal* who = server_.registry_.Find(cn);
    if (who == nullptr ||
        (who->role != auth::Role::kOperator && who->role != auth::Role::kAuditor)) {
      Reply(http::status::forbidden, "text/plain",
            "403: the status page is for the alliance's operators and auditors\n");
      spdlog::warn("status page refused cn={}", cn);
    } else if (request_.method() != http::verb::get) {
      Reply(http::status::method_not_allowed, "text/plain", "405: read-only\n");
    } else if (request_.target() == "/" || request_.target() == "/index.html") {
      auto page = server_.render_(*who);
      if (page.ok()) {
        Reply(http::status::ok, "text/html; charset=utf-8", std::move(*page));
      } else {
        Reply(http::status::service_unavailable, "text/plain",
              absl::StrCat("503: ", page.status().message(), "\n"));
      }
    } else {
      Reply(http::status::not_found, "text/plain", "404\n");
    }
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return;
                        self->stream_.async_shutdown([self](beast::error_code) {});
                      });
  }

  void Reply(http::status status, const char* type, std::string body) {
    response_.result(status);
    response_.set(http::field::content_type, type);
    response_.body() = std::move(body);
    response_.prepare_payload();
  }

  StatusPageServer& server_;
  std::shared_ptr<ssl::context> ssl_;  // the material this connection was opened with
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

StatusPageServer::StatusPageServer(const tls::ServerTls& tls, const auth::Registry& registry,
                                   RenderFn render)
    : registry_(registry), render_(std::move(render)), tls_(tls), acceptor_(io_) {}

absl::StatusOr<std::shared_ptr<ssl::context>> StatusPageServer::MakeContext() const {
  auto m = tls_.material();
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  // TLS 1.2 or newer, a client certificate from the broker's client CA required, not revoked.
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  ctx->use_certificate_chain(boost::asio::buffer(m->cert_pem), ec);
  if (!ec) ctx->use_private_key(boost::asio::buffer(m->key_pem), ssl::context::pem, ec);
  if (!ec) ctx->add_certificate_authority(boost::asio::buffer(m->ca_pem), ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("status page TLS: ", ec.message()));
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  ctx->set_verify_callback([this](bool preverified, ssl::verify_context& vc) {
    if (!preverified) return false;
    X509_STORE_CTX* store = vc.native_handle();
    if (X509_STORE_CTX_get_error_depth(store) != 0) return true;  // the CA
    if (tls_.IsRevokedSerial(tls::SerialHex(X509_STORE_CTX_get_current_cert(store)))) {
      spdlog::warn("status page refused a revoked client certificate");
      return false;
    }
    return true;
  });
  return ctx;
}

std::shared_ptr<ssl::context> StatusPageServer::context() const {
  std::lock_guard<std::mutex> lock(ssl_mu_);
  return ssl_;
}

absl::Status StatusPageServer::ReloadTls() {
  auto ctx = MakeContext();
  if (!ctx.ok()) return ctx.status();
  std::lock_guard<std::mutex> lock(ssl_mu_);
  ssl_ = std::move(*ctx);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<StatusPageServer>> StatusPageServer::Start(
    const std::string& listen, const tls::ServerTls& tls, const auth::Registry& registry,
    RenderFn render) {
  std::unique_ptr<StatusPageServer> server(new StatusPageServer(tls, registry, std::move(render)));
  auto ctx = server->MakeContext();
  if (!ctx.ok()) return ctx.status();
  server->ssl_ = std::move(*ctx);
  auto port = ListenOn(server->acceptor_, listen, "server.status_listen");
  if (!port.ok()) return port.status();
  server->port_ = *port;
  server->Accept();
  server->thread_ = std::thread([s = server.get()] { s->io_.run(); });
  return server;
}

StatusPageServer::~StatusPageServer() {
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void StatusPageServer::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) return;
    std::make_shared<Session>(*this, std::move(socket))->Run();
    Accept();
  });
}

}  // namespace refbroker::observability

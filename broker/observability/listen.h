#pragma once
// Opens, binds and listens `acceptor` on "host:port" (port 0 = any free port); errors name the
// config key. Shared by the broker's HTTP listeners (metrics, status page).

#include <boost/asio/ip/tcp.hpp>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace refbroker::observability {

// Returns the port it listens on.
inline absl::StatusOr<int> ListenOn(boost::asio::ip::tcp::acceptor& acceptor,
                                    const std::string& listen, const char* key) {
  using boost::asio::ip::tcp;
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": expected host:port"));
  }
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(listen.substr(0, colon), ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(key, ": bad address"));
  int port = std::atoi(listen.substr(colon + 1).c_str());
  tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(64, ec);
  if (ec) return absl::UnavailableError(absl::StrCat(key, " ", listen, ": ", ec.message()));
  return static_cast<int>(acceptor.local_endpoint().port());
}

}  // namespace refbroker::observability

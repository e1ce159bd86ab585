#pragma once
// Authenticator: maps a verified mTLS peer to a registry principal.
//
// The TLS layer (tls::ServerTls: REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, the CRL) has
// already refused connections without a certificate, with one from another CA or a revoked one;
// this class reads the verified certificate's subject CN, and refuses the calls of a connection
// whose certificate the CRL listed after it was opened (and, through Recheck, the further
// messages of a stream opened before). Thread-safe.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "broker/auth/registry.h"
#include "broker/tls/server_tls.h"

namespace refbroker::auth {

class Authenticator {
 public:
  // `tls` (may be null): calls from a certificate its CRL lists are refused.
  explicit Authenticator(const Registry& registry, const tls::ServerTls* tls = nullptr)
      : registry_(registry), tls_(tls) {}

  // The principal named by the peer certificate's CN; UNAUTHENTICATED when there is no verified
  // peer identity or the CN is not in the registry.
  absl::StatusOr<const Principal*> Authenticate(const grpc::AuthContext* context) const;

  // For a stream: Authenticate again, to be called before each message the stream carries
  // either way, so a certificate the CRL lists after the stream opened (SIGHUP) ends the stream
  // with UNAUTHENTICATED instead of carrying patient data on. The Authenticator must outlive it.
  using Recheck = std::function<absl::Status()>;
  Recheck RecheckFor(std::shared_ptr<const grpc::AuthContext> context) const;

  const Registry& registry() const { return registry_; }

 private:
  const Registry& registry_;
  const tls::ServerTls* tls_;
};

}  // namespace refbroker::auth

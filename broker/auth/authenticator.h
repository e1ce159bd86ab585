#pragma once
// Authenticator: maps a verified mTLS peer to a registry principal.
//
// The TLS layer (grpc::SslServerCredentials with REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY)
// has already refused connections without a certificate or with one from another CA; this class
// only reads the verified certificate's subject CN. Thread-safe (the registry is immutable).

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "broker/auth/registry.h"

namespace refbroker::auth {

class Authenticator {
 public:
  explicit Authenticator(const Registry& registry) : registry_(registry) {}

  // The principal named by the peer certificate's CN; UNAUTHENTICATED when there is no verified
  // peer identity or the CN is not in the registry.
  absl::StatusOr<const Principal*> Authenticate(const grpc::AuthContext* context) const;

  const Registry& registry() const { return registry_; }

 private:
  const Registry& registry_;
};

}  // namespace refbroker::auth

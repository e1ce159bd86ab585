#include "broker/auth/authenticator.h"

#include "absl/strings/str_cat.h"

namespace refbroker::auth {

absl::StatusOr<const Principal*> Authenticator::Authenticate(
    const grpc::AuthContext* context) const {
  if (context == nullptr || !context->IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("no verified client certificate");
  }
  auto cns = context->FindPropertyValues("x509_common_name");
  if (cns.empty()) return absl::UnauthenticatedError("client certificate has no subject CN");
  std::string cn(cns.front().data(), cns.front().size());
  // A connection opened before the CRL listed its certificate: refused from its next call.
  if (tls_ != nullptr) {
    auto pems = context->FindPropertyValues("x509_pem_cert");
    if (!pems.empty() &&
        tls_->IsRevokedPem(std::string_view(pems.front().data(), pems.front().size()))) {
      return absl::UnauthenticatedError(
          absl::StrCat("client certificate of '", cn, "' is revoked (tls.crl)"));
    }
  }
  const Principal* p = registry_.Find(cn);
  if (p == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("client certificate CN '", cn, "' names no registered principal"));
  }
  return p;
}

Authenticator::Recheck Authenticator::RecheckFor(
    std::shared_ptr<const grpc::AuthContext> context) const {
  return [this, context = std::move(context)] { return Authenticate(context.get()).status(); };
}

}  // namespace refbroker::auth

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
  const Principal* p = registry_.Find(cn);
  if (p == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("client certificate CN '", cn, "' names no registered principal"));
  }
  return p;
}

}  // namespace refbroker::auth

#pragma once
// ReferralRouter: decides which institution receives a referral. An up-referral goes to the
// named county institution, or by default to its alliance's default receiver (the lead county
// hospital); a receiver outside the sender's alliance only when the registry lists it as one of
// the sender's partners. Thread-safe (reads the immutable registry).

#include <string>

#include "absl/status/statusor.h"
#include "broker/auth/registry.h"

namespace refbroker::routing {

class ReferralRouter {
 public:
  explicit ReferralRouter(const auth::Registry& registry) : registry_(registry) {}

  // The receiving institution for an UP referral from `sender` addressed to `to_institution`
  // (empty = default). INVALID_ARGUMENT naming "referral.to_institution" when it is unknown,
  // not a hospital or center, not above township level, or out of the sender's reach.
  absl::StatusOr<const auth::Principal*> RouteUp(const auth::Principal& sender,
                                                 const std::string& to_institution) const;

  // The receiving township for a DOWN referral from the county institution `sender`:
  // a registered clinic of the sender's alliance (or a listed partner). INVALID_ARGUMENT naming
  // "referral.to_institution" otherwise.
  absl::StatusOr<const auth::Principal*> RouteDown(const auth::Principal& sender,
                                                   const std::string& to_institution) const;

 private:
  const auth::Registry& registry_;
};

}  // namespace refbroker::routing

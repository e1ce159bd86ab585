#include "broker/routing/referral_router.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace refbroker::routing {

absl::StatusOr<const auth::Principal*> ReferralRouter::RouteUp(
    const auth::Principal& sender, const std::string& to_institution) const {
  constexpr char kField[] = "referral.to_institution";
  std::string target = to_institution;
  if (target.empty()) {
    const auth::Alliance* alliance = registry_.FindAlliance(sender.alliance);
    if (alliance == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(kField, ": sender has no alliance"));
    }
    target = alliance->default_receiver;
  }
  const auth::Principal* receiver = registry_.Find(target);
  if (receiver == nullptr || !receiver->IsInstitution()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kField, ": '", target, "' is not a registered institution"));
  }
  if (receiver->id == sender.id) {
    return absl::InvalidArgumentError(
        absl::StrCat(kField, ": an institution cannot refer to itself"));
  }
  if (receiver->role != auth::Role::kHospital && receiver->role != auth::Role::kCenter) {
    return absl::InvalidArgumentError(
        absl::StrCat(kField, ": '", target, "' is not a hospital or resource center"));
  }
  if (receiver->level == auth::Level::kTownship) {
    return absl::InvalidArgumentError(
        absl::StrCat(kField, ": an up-referral goes to county level or above"));
  }
  bool partner = std::find(sender.partners.begin(), sender.partners.end(), receiver->id) !=
                 sender.partners.end();
  if (receiver->alliance != sender.alliance && !partner) {
    return absl::InvalidArgumentError(absl::StrCat(
        kField, ": '", target, "' is outside the sender's alliance and not a listed partner"));
  }
  return receiver;
}

absl::StatusOr<const auth::Principal*> ReferralRouter::RouteDown(
    const auth::Principal& sender, const std::string& to_institution) const {
  constexpr char kField[] = "referral.to_institution";
  const auth::Principal* receiver = registry_.Find(to_institution);
  if (receiver == nullptr || !receiver->IsInstitution()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kField, ": '", to_institution, "' is not a registered institution"));
  }
  if (receiver->role != auth::Role::kClinic) {
    return absl::InvalidArgumentError(
        absl::StrCat(kField, ": a DOWN referral goes to a township health center"));
  }
  bool partner = std::find(sender.partners.begin(), sender.partners.end(), receiver->id) !=
                 sender.partners.end();
  if (receiver->alliance != sender.alliance && !partner) {
    return absl::InvalidArgumentError(absl::StrCat(
        kField, ": '", to_institution, "' is outside the sender's alliance and not a partner"));
  }
  return receiver;
}

}  // namespace refbroker::routing

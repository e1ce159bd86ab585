#include "broker/auth/access_policy.h"

#include "absl/strings/str_cat.h"

namespace refbroker::auth {
namespace {
bool IsOperatorOf(const Principal& who, const std::string& alliance) {
  return who.role == Role::kOperator && !alliance.empty() && who.alliance == alliance;
}
}  // namespace

std::string AccessPolicy::AllianceOf(const std::string& owner) const {
  if (const Principal* p = registry_.Find(owner)) return p->alliance;
  if (registry_.FindAlliance(owner)) return owner;
  return "";
}

absl::Status AccessPolicy::CanConsume(const Principal& who, const QueueName& queue) const {
  if (queue.kind == refbroker::v1::ALLIANCE) {
    if (IsOperatorOf(who, queue.owner)) return absl::OkStatus();
  } else if (who.IsInstitution() && who.id == queue.owner) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("queue: ", who.id, " may not consume ", queue.ToString()));
}

absl::Status AccessPolicy::CanInspect(const Principal& who, const std::string& owner,
                                      const std::string& field) const {
  if (who.id == owner || IsOperatorOf(who, AllianceOf(owner))) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(field, ": ", who.id, " may not inspect queues of ", owner));
}

absl::Status AccessPolicy::CanRequeue(const Principal& who, const std::string& owner) const {
  return CanInspect(who, owner, "queue.owner");
}

absl::Status AccessPolicy::CanReadReferral(const Principal& who, const std::string& sender,
                                           const std::string& receiver) const {
  return CanReadBetween(who, sender, receiver, "referral");
}

absl::Status AccessPolicy::CanReadConsult(const Principal& who, const std::string& requester,
                                          const std::string& target) const {
  return CanReadBetween(who, requester, target, "consult");
}

absl::Status AccessPolicy::CanReadBetween(const Principal& who, const std::string& a,
                                          const std::string& b, const char* what) const {
  if (who.id == a || who.id == b) return absl::OkStatus();
  if (IsOperatorOf(who, AllianceOf(a)) || IsOperatorOf(who, AllianceOf(b))) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("id: ", who.id, " may not read this ", what));
}

}  // namespace refbroker::auth

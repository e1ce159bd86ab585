#pragma once
// AccessPolicy: who may do what. A principal acts only as itself; operators see their alliance.
// Every method returns OK or PERMISSION_DENIED with a message that names the field concerned.

#include <string>

#include "absl/status/status.h"
#include "broker/auth/registry.h"
#include "broker/common/queue_name.h"

namespace refbroker::auth {

class AccessPolicy {
 public:
  explicit AccessPolicy(const Registry& registry) : registry_(registry) {}

  // Subscribe to a queue: only its owner institution.
  absl::Status CanConsume(const Principal& who, const QueueName& queue) const;
  // See queue status and dead letters of `owner`: the owner itself, or an operator of the
  // owner's alliance.
  absl::Status CanInspect(const Principal& who, const std::string& owner,
                          const std::string& field) const;
  // Requeue dead letters: operators of the owner's alliance, or the owner itself.
  absl::Status CanRequeue(const Principal& who, const std::string& owner) const;
  // Read a referral between `sender` and `receiver`.
  absl::Status CanReadReferral(const Principal& who, const std::string& sender,
                               const std::string& receiver) const;
  // Read a consult between `requester` and `target` (the parties, or operators of an alliance).
  absl::Status CanReadConsult(const Principal& who, const std::string& requester,
                              const std::string& target) const;
  // The alliance an owner (institution code or alliance id) belongs to; empty when unknown.
  std::string AllianceOf(const std::string& owner) const;

 private:
  absl::Status CanReadBetween(const Principal& who, const std::string& a, const std::string& b,
                              const char* what) const;

  const Registry& registry_;
};

}  // namespace refbroker::auth

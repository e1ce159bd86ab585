#pragma once
// ReferralIntake: accepts a referral from an institution: validates it, checks that the caller
// submits as itself, routes it, and stores it together with its delivery message (one durable
// transaction), then wakes the receiver's subscribers. Thread-safe; blocks on the store.

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "broker/auth/registry.h"
#include "broker/common/clock.h"
#include "broker/domain/referral_validator.h"
#include "broker/routing/referral_router.h"
#include "broker/storage/store.h"
#include "refbroker/v1/referral.pb.h"

namespace refbroker::domain {

struct SubmitOutcome {
  refbroker::v1::Referral referral;  // as stored
  bool duplicate = false;
};

class ReferralIntake {
 public:
  using NotifyFn = std::function<void(const std::string& queue)>;

  ReferralIntake(storage::Store& store, const routing::ReferralRouter& router, const Clock& clock,
                 NotifyFn notify, ReferralLimits limits = ReferralLimits())
      : store_(store),
        router_(router),
        clock_(clock),
        notify_(std::move(notify)),
        limits_(limits) {}

  // INVALID_ARGUMENT / RESOURCE_EXHAUSTED for bad input (field named), PERMISSION_DENIED when
  // the caller is not referral.from.institution or may not refer, ALREADY_EXISTS when the
  // client_request_id was used for different content, storage errors as they come.
  absl::StatusOr<SubmitOutcome> Submit(const auth::Principal& caller,
                                       const refbroker::v1::Referral& submitted);

  // The stored referral (parsed), NotFound when unknown.
  absl::StatusOr<refbroker::v1::Referral> Get(const std::string& id, std::string* sender = nullptr,
                                              std::string* receiver = nullptr);

 private:
  storage::Store& store_;
  const routing::ReferralRouter& router_;
  const Clock& clock_;
  NotifyFn notify_;
  ReferralLimits limits_;
};

}  // namespace refbroker::domain

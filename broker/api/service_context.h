#pragma once
// ServiceContext: the collaborators every gRPC service adapter uses. Owned by BrokerServer;
// outlives the services.

#include "broker/audit/audit_backlog.h"
#include "broker/auth/access_policy.h"
#include "broker/auth/authenticator.h"
#include "broker/auth/rate_limiter.h"
#include "broker/config/broker_options.h"
#include "broker/delivery/delivery_engine.h"
#include "broker/domain/referral_workflow.h"
#include "broker/observability/metrics.h"

namespace refbroker::api {

struct ServiceContext {
  const auth::Authenticator& authenticator;
  const auth::AccessPolicy& policy;
  delivery::DeliveryEngine& engine;
  domain::ReferralWorkflow& workflow;
  observability::Metrics& metrics;
  const config::DeliveryOptions& delivery_options;
  audit::AuditBacklog& audit_backlog;  // entries of reads answered while the disk is full
  auth::RateLimiter& limiter;          // per-principal call rate and stream limits
};

}  // namespace refbroker::api

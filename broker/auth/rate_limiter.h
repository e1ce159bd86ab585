#pragma once
// RateLimiter: per-principal limits, so that one institution flooding the broker (a runaway
// HIS interface, a retry loop) gets RESOURCE_EXHAUSTED while the others keep their latency:
// a token bucket of calls per second (with a burst) and a cap on concurrent streams
// (Subscribe, consult sessions). Refusals cost no store work and write no audit entry.
// Calls refused as unauthenticated (a certificate the CA signed for a CN the registry does not
// hold, or revoked after the connection opened) are audited up to a rate per peer address, so
// a client retrying with such a certificate cannot turn its retries into store writes.
// Thread-safe.

#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "broker/auth/registry.h"
#include "broker/common/clock.h"

namespace refbroker::auth {

struct RateLimits {
  double calls_per_second = 500;           // sustained, per principal
  double burst = 1000;                     // calls allowed at once after a quiet spell
  int max_streams = 64;                    // concurrent streams per principal
  double refusals_audited_per_second = 5;  // unauthenticated calls audited, per peer address
  double refusals_audited_burst = 20;
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimits limits) : limits_(limits) {}

  // Takes a token for a call by `who`, or RESOURCE_EXHAUSTED naming the limit.
  absl::Status AdmitCall(const Principal& who, Micros now);
  // Counts a stream opened by `who`, or RESOURCE_EXHAUSTED when it has max_streams already.
  absl::Status OpenStream(const Principal& who);
  void CloseStream(const Principal& who);
  // Whether an unauthenticated call from `peer` (gRPC's peer string; its port is ignored) is
  // audited; false beyond refusals_audited_per_second: refuse it without writing anything.
  bool AuditRefusal(const std::string& peer, Micros now);

 private:
  struct Bucket {
    double tokens = 0;
    Micros refilled_at = 0;
    bool started = false;
    int streams = 0;
  };
  // Refills `b` for the time since its last call and takes one token if there is one.
  static bool Take(Bucket& b, double per_second, double burst, Micros now);

  const RateLimits limits_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;          // per principal; guarded by mu_
  std::map<std::string, Bucket> refusal_buckets_;  // per peer address; guarded by mu_
};

}  // namespace refbroker::auth

#include "broker/auth/rate_limiter.h"

#include <gtest/gtest.h>

namespace refbroker::auth {
namespace {

constexpr Micros kSecond = 1000000;

RateLimits Limits() {
  RateLimits l;
  l.calls_per_second = 10;
  l.burst = 3;
  l.refusals_audited_per_second = 2;
  l.refusals_audited_burst = 4;
  return l;
}

TEST(RateLimiter, ACallerGetsItsBurstThenItsRateAndNoMore) {
  RateLimiter limiter(Limits());
  Principal clinic;
  clinic.id = "clinic";
  Micros t = 100 * kSecond;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.AdmitCall(clinic, t).ok()) << i;
  absl::Status refused = limiter.AdmitCall(clinic, t);
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_NE(refused.message().find("limits.calls_per_second"), std::string::npos) << refused;
  EXPECT_TRUE(limiter.AdmitCall(clinic, t + kSecond / 10).ok());  // one token back at 10/s
  EXPECT_FALSE(limiter.AdmitCall(clinic, t + kSecond / 10).ok());
}

TEST(RateLimiter, RefusalsOfOnePeerAreAuditedUpToTheirRateWhateverItsPort) {
  RateLimiter limiter(Limits());
  Micros t = 100 * kSecond;
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(limiter.AuditRefusal("ipv4:10.1.2.3:" + std::to_string(40000 + i), t)) << i;
  }
  EXPECT_FALSE(limiter.AuditRefusal("ipv4:10.1.2.3:50000", t)) << "a new port is the same peer";
  EXPECT_TRUE(limiter.AuditRefusal("ipv4:10.1.2.4:40000", t)) << "another peer has its own";
  EXPECT_TRUE(limiter.AuditRefusal("ipv6:[::1]:40000", t));
  EXPECT_TRUE(limiter.AuditRefusal("ipv4:10.1.2.3:40000", t + kSecond / 2));  // 2/s: one back
  EXPECT_FALSE(limiter.AuditRefusal("ipv4:10.1.2.3:40000", t + kSecond / 2));
}

TEST(RateLimiter, RefusalsDoNotSpendTheCallsOfAPrincipal) {
  RateLimiter limiter(Limits());
  Principal clinic;
  clinic.id = "clinic";
  Micros t = 100 * kSecond;
  for (int i = 0; i < 10; ++i) limiter.AuditRefusal("ipv4:10.1.2.3:40000", t);
  EXPECT_TRUE(limiter.AdmitCall(clinic, t).ok());
}

}  // namespace
}  // namespace refbroker::auth

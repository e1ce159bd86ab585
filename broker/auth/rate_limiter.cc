#include "broker/auth/rate_limiter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace refbroker::auth {

absl::Status RateLimiter::AdmitCall(const Principal& who, Micros now) {
  std::lock_guard<std::mutex> lock(mu_);
  Bucket& b = buckets_[who.id];
  if (!b.started) {
    b.started = true;
    b.tokens = limits_.burst;
    b.refilled_at = now;
  }
  double elapsed = static_cast<double>(std::max<Micros>(0, now - b.refilled_at)) / 1e6;
  b.tokens = std::min(limits_.burst, b.tokens + elapsed * limits_.calls_per_second);
  b.refilled_at = now;
  if (b.tokens < 1) {
    return absl::ResourceExhaustedError(
        absl::StrCat("caller: ", who.id, " exceeds ", limits_.calls_per_second,
                     " calls per second (limits.calls_per_second); slow down and retry later"));
  }
  b.tokens -= 1;
  return absl::OkStatus();
}

absl::Status RateLimiter::OpenStream(const Principal& who) {
  std::lock_guard<std::mutex> lock(mu_);
  Bucket& b = buckets_[who.id];
  if (b.streams >= limits_.max_streams) {
    return absl::ResourceExhaustedError(
        absl::StrCat("caller: ", who.id, " has ", b.streams, " streams open (limits.max_streams)"));
  }
  b.streams++;
  return absl::OkStatus();
}

void RateLimiter::CloseStream(const Principal& who) {
  std::lock_guard<std::mutex> lock(mu_);
  Bucket& b = buckets_[who.id];
  if (b.streams > 0) b.streams--;
}

}  // namespace refbroker::auth

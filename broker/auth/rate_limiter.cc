#include "broker/auth/rate_limiter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace refbroker::auth {

namespace {

// A bound on the peers remembered for refusals: past it they start again from a full bucket.
constexpr size_t kMaxRefusalPeers = 4096;

}  // namespace

bool RateLimiter::Take(Bucket& b, double per_second, double burst, Micros now) {
  if (!b.started) {
    b.started = true;
    b.tokens = burst;
    b.refilled_at = now;
  }
  double elapsed = static_cast<double>(std::max<Micros>(0, now - b.refilled_at)) / 1e6;
  b.tokens = std::min(burst, b.tokens + elapsed * per_second);
  b.refilled_at = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

absl::Status RateLimiter::AdmitCall(const Principal& who, Micros now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!Take(buckets_[who.id], limits_.calls_per_second, limits_.burst, now)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("caller: ", who.id, " exceeds ", limits_.calls_per_second,
                     " calls per second (limits.calls_per_second); slow down and retry later"));
  }
  return absl::OkStatus();
}

bool RateLimiter::AuditRefusal(const std::string& peer, Micros now) {
  // "ipv4:10.1.2.3:51234" and "ipv6:[::1]:51234": the address without the port.
  std::string address = peer.substr(0, peer.rfind(':'));
  std::lock_guard<std::mutex> lock(mu_);
  if (refusal_buckets_.size() >= kMaxRefusalPeers && refusal_buckets_.count(address) == 0) {
    refusal_buckets_.clear();
  }
  return Take(refusal_buckets_[address], limits_.refusals_audited_per_second,
              limits_.refusals_audited_burst, now);
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

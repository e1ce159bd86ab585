#pragma once
// Latency samples and their percentiles (nearest rank), for refbench.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <vector>

namespace refbench {

using Clock = std::chrono::steady_clock;

inline double MillisBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Nearest-rank percentile `p` (0 < p ≤ 100) of `sorted`; 0 when empty.
inline double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

struct LatencySummary {
  size_t count = 0;
  double p50 = 0, p99 = 0, p999 = 0;  // milliseconds
};

// Thread-safe collection of latencies in milliseconds.
class LatencyRecorder {
 public:
  void Add(double ms) {
    std::lock_guard<std::mutex> lock(mu_);
    samples_.push_back(ms);
  }
  LatencySummary Summarize() {
    std::lock_guard<std::mutex> lock(mu_);
    std::sort(samples_.begin(), samples_.end());
    return {samples_.size(), Percentile(samples_, 50), Percentile(samples_, 99),
            Percentile(samples_, 99.9)};
  }

 private:
  std::mutex mu_;
  std::vector<double> samples_;
};

// The median of `values` (the middle one; the lower middle for an even count).
inline double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[(values.size() - 1) / 2];
}

}  // namespace refbench

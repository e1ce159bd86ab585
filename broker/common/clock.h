#pragma once
// Clock seam: every component that reads time takes a Clock&, so tests can control time.

#include <chrono>
#include <cstdint>

namespace refbroker {

// Microseconds since the Unix epoch (UTC). The unit of every stored time.
using Micros = int64_t;

// Thread-safe source of wall-clock time.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual Micros Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  Micros Now() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static SystemClock& Get() {
    static SystemClock clock;
    return clock;
  }
};

}  // namespace refbroker

#pragma once
// The load refbench puts on a target (the broker, or the no-op server): clinics submitting
// referral-sized messages (about 2 KiB) in one of three modes, while (for the broker) the
// receiving hospital subscribes and acks each delivery; then the loss check.

#include <string>
#include <vector>

#include "client/bench/bench_stats.h"

namespace refbench {

enum class Mode {
  kStream,      // SubmitReferrals: each clinic pipelines with a window of unanswered submits
  kUnary,       // one SubmitReferral at a time, one caller
  kConcurrent,  // many callers, each one SubmitReferral at a time
};
const char* ModeName(Mode mode);

struct Party {
  std::string code;  // unified social credit code
  std::string cert;  // certificate stem in the certs directory
};

struct LoadOptions {
  std::string target;  // host:port
  std::string certs;   // ca.crt and <stem>.crt/.key
  Mode mode = Mode::kStream;
  double seconds = 10;
  std::vector<Party> clinics;  // senders (stream mode: one stream each)
  Party receiver;              // the hospital all referrals go to
  bool subscribe = true;       // false for the no-op server (nothing is delivered)
  int window = 64;             // stream mode: unanswered submits per stream
  int callers = 64;            // concurrent mode
  int payload_bytes = 2048;    // serialized size of each referral, about
  double drain_seconds = 60;   // at most, waiting for every acknowledged one to be delivered
  size_t max_submits = 0;      // stream mode: stop after this many submits in all (0: no limit)
  std::string run_tag;         // makes request ids unique across runs
};

struct LoadResult {
  size_t acked = 0;           // durable answers (OK)
  size_t refused = 0;         // answers other than OK
  std::string first_refusal;  // the first of them
  double seconds = 0;         // from the first submit to the last answer
  double per_second = 0;      // acked / seconds
  LatencySummary submit;      // submit → durable answer
  LatencySummary delivery;    // submit → delivered to the hospital's subscriber
  size_t delivered = 0;       // acknowledged ones delivered
  double delivered_per_second = 0;  // delivered / from the first submit to the last delivery
  size_t lost = 0;            // acknowledged and never delivered (after the drain)
  std::string error;          // set when the run could not be done at all
};

LoadResult RunLoad(const LoadOptions& options);

}  // namespace refbench

// Fuzz target for refctl's one text input: `refctl dlq requeue --from FILE`, the JSON of
// `refctl --json dlq list` (client/ctl/requeue_list.h). Whatever the text, the parser answers a
// status naming what is wrong, or requests that each name exactly one dead letter, once.

#include <cstdint>
#include <set>
#include <string>
#include <tuple>

#include "client/ctl/requeue_list.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto requests = refctl::ParseRequeueList(text);
  if (!requests.ok()) {
    if (requests.status().message().find("--from") == std::string::npos) __builtin_trap();
    return 0;
  }
  if (requests->size() > static_cast<size_t>(refctl::kMaxRequeueEntries)) __builtin_trap();
  std::set<std::tuple<std::string, int, std::string, uint64_t>> seen;
  for (const auto& r : *requests) {
    // Never "the whole queue" (sequence 0), never an unnamed queue or group, never twice.
    if (r.sequence() == 0 || r.queue().owner().empty() || r.consumer_group().empty() ||
        r.queue().kind() == refbroker::v1::QUEUE_KIND_UNSPECIFIED) {
      __builtin_trap();
    }
    if (!seen.emplace(r.queue().owner(), r.queue().kind(), r.consumer_group(), r.sequence())
             .second) {
      __builtin_trap();
    }
  }
  return 0;
}

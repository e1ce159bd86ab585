#pragma once
// refctl's one input that is not a flag: the dead letters to put back, as the JSON that
// `refctl --json dlq list` prints (a ListDeadLettersResponse), so that an operator can pick them
// with a script:
//
//   refctl --json dlq list --queue CODE/referrals > dead.json
//   jq '.dead_letters |= map(select(.attempts > 3))' dead.json | refctl dlq requeue --from -
//
// Every entry must name one dead letter: queue owner and kind, consumer group and a sequence
// (a sequence of 0 would mean "all of the queue" to the broker, so a file may not ask for it).
// Errors name the entry and the field, e.g. "dead_letters[2].sequence: must be > 0".

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "refbroker/v1/admin.pb.h"

namespace refctl {

// At most as many entries as one `dlq list` can print.
inline constexpr int kMaxRequeueEntries = 1000;

// The requeue requests the JSON asks for, once each, in the order given.
absl::StatusOr<std::vector<refbroker::v1::RequeueDeadLetterRequest>> ParseRequeueList(
    std::string_view json);

}  // namespace refctl

#include "client/ctl/requeue_list.h"

#include <google/protobuf/util/json_util.h>

#include <set>
#include <string>
#include <tuple>

namespace refctl {

absl::StatusOr<std::vector<refbroker::v1::RequeueDeadLetterRequest>> ParseRequeueList(
    std::string_view json) {
  refbroker::v1::ListDeadLettersResponse list;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field is an error, not a silent default
  auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &list, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        "--from: not the JSON of `refctl --json dlq list`: " +
        std::string(parsed.message().data(), parsed.message().size()));
  }
  if (list.dead_letters_size() > kMaxRequeueEntries) {
    return absl::InvalidArgumentError(
        "--from: dead_letters: " + std::to_string(list.dead_letters_size()) + " entries, at most " +
        std::to_string(kMaxRequeueEntries));
  }
  std::vector<refbroker::v1::RequeueDeadLetterRequest> out;
  std::set<std::tuple<std::string, int, std::string, uint64_t>> seen;
  for (int i = 0; i < list.dead_letters_size(); ++i) {
    const auto& d = list.dead_letters(i);
    auto field = [i](const char* name) {
      return "--from: dead_letters[" + std::to_string(i) + "]." + name;
    };
    if (d.queue().owner().empty())
      return absl::InvalidArgumentError(field("queue.owner") + ": missing");
    if (d.queue().kind() == refbroker::v1::QUEUE_KIND_UNSPECIFIED ||
        !refbroker::v1::QueueKind_IsValid(d.queue().kind())) {
      return absl::InvalidArgumentError(field("queue.kind") + ": missing or unknown");
    }
    if (d.consumer_group().empty()) {
      return absl::InvalidArgumentError(field("consumer_group") + ": missing");
    }
    if (d.sequence() == 0) return absl::InvalidArgumentError(field("sequence") + ": must be > 0");
    if (!seen.emplace(d.queue().owner(), d.queue().kind(), d.consumer_group(), d.sequence())
             .second) {
      continue;  // listed twice: requeued once
    }
    refbroker::v1::RequeueDeadLetterRequest r;
    *r.mutable_queue() = d.queue();
    r.set_consumer_group(d.consumer_group());
    r.set_sequence(d.sequence());
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace refctl

#pragma once
// QueueName: the broker-side name of one inbound queue, "<owner>/<kind>".

#include <string>

#include "absl/status/statusor.h"
#include "refbroker/v1/common.pb.h"

namespace refbroker {

struct QueueName {
  std::string owner;  // institution code, or alliance id for ALLIANCE queues
  refbroker::v1::QueueKind kind = refbroker::v1::QUEUE_KIND_UNSPECIFIED;

  std::string ToString() const;
  refbroker::v1::QueueRef ToProto() const;
  static absl::StatusOr<QueueName> Parse(const std::string& text);
  static absl::StatusOr<QueueName> FromProto(const refbroker::v1::QueueRef& ref,
                                             const std::string& field);
  bool operator==(const QueueName& o) const { return owner == o.owner && kind == o.kind; }
};

// "referrals", "referral-updates", ...; empty for QUEUE_KIND_UNSPECIFIED.
std::string QueueKindName(refbroker::v1::QueueKind kind);

}  // namespace refbroker

#include "broker/common/queue_name.h"

#include "absl/strings/str_cat.h"

namespace refbroker {
namespace {
using refbroker::v1::QueueKind;

constexpr struct {
  QueueKind kind;
  const char* name;
} kKindNames[] = {
    {refbroker::v1::REFERRALS, "referrals"}, {refbroker::v1::REFERRAL_UPDATES, "referral-updates"},
    {refbroker::v1::CONSULTS, "consults"},   {refbroker::v1::CONSULT_UPDATES, "consult-updates"},
    {refbroker::v1::RESULTS, "results"},     {refbroker::v1::ALLIANCE, "alliance"},
};
}  // namespace

std::string QueueKindName(QueueKind kind) {
  for (const auto& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "";
}

std::string QueueName::ToString() const { return absl::StrCat(owner, "/", QueueKindName(kind)); }

refbroker::v1::QueueRef QueueName::ToProto() const {
  refbroker::v1::QueueRef ref;
  ref.set_owner(owner);
  ref.set_kind(kind);
  return ref;
}

absl::StatusOr<QueueName> QueueName::Parse(const std::string& text) {
  auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue: '", text, "' is not of the form <owner>/<kind>"));
  }
  std::string kind = text.substr(slash + 1);
  for (const auto& k : kKindNames) {
    if (kind == k.name) return QueueName{text.substr(0, slash), k.kind};
  }
  return absl::InvalidArgumentError(absl::StrCat("queue: unknown queue kind '", kind, "'"));
}

absl::StatusOr<QueueName> QueueName::FromProto(const refbroker::v1::QueueRef& ref,
                                               const std::string& field) {
  if (ref.owner().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".owner: required"));
  }
  if (ref.owner().size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".owner: longer than 64 characters"));
  }
  if (QueueKindName(ref.kind()).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".kind: required"));
  }
  return QueueName{ref.owner(), ref.kind()};
}

}  // namespace refbroker

#include "broker/domain/referral_intake.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "broker/common/ids.h"
#include "broker/common/queue_name.h"
#include "broker/common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "refbroker/v1/delivery.pb.h"

namespace refbroker::domain {
namespace {

using google::protobuf::util::TimeUtil;
using refbroker::v1::Referral;

std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::io::StringOutputStream raw(&out);
  google::protobuf::io::CodedOutputStream coded(&raw);
  coded.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

absl::Status CheckSender(const auth::Principal& caller, const Referral& r) {
  if (!caller.IsInstitution()) {
    return absl::PermissionDeniedError(
        absl::StrCat("referral.from.institution: ", caller.id, " is not an institution"));
  }
  if (r.from().institution() != caller.id) {
    return absl::PermissionDeniedError(absl::StrCat("referral.from.institution: the caller ",
                                                    caller.id, " may only submit as itself"));
  }
  if (r.direction() == refbroker::v1::DOWN) {
    return absl::UnimplementedError(
        "referral.direction: DOWN referrals arrive with the two-way referral workflow");
  }
  if (caller.role != auth::Role::kClinic) {
    return absl::PermissionDeniedError(absl::StrCat(
        "referral.direction: only a township clinic sends an UP referral (caller is a ",
        auth::RoleName(caller.role), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SubmitOutcome> ReferralIntake::Submit(const auth::Principal& caller,
                                                     const Referral& submitted) {
  Micros now = clock_.Now();
  RETURN_IF_ERROR(ValidateReferralSubmission(submitted, now, limits_));
  RETURN_IF_ERROR(CheckSender(caller, submitted));
  ASSIGN_OR_RETURN(const auth::Principal* receiver,
                   router_.RouteUp(caller, submitted.to_institution()));

  Referral r = submitted;
  r.clear_id();
  r.clear_state();
  r.clear_submitted_at();
  r.clear_updated_at();
  r.set_to_institution(receiver->id);
  std::string digest = Sha256Hex(DeterministicBytes(r));

  r.set_id(NewId("ref", now));
  r.set_state(refbroker::v1::SUBMITTED);
  *r.mutable_submitted_at() = TimeUtil::MicrosecondsToTimestamp(now);
  *r.mutable_updated_at() = r.submitted_at();

  storage::ReferralRecord record;
  record.id = r.id();
  record.sender = caller.id;
  record.receiver = receiver->id;
  record.client_request_id = r.client_request_id();
  record.request_digest = digest;
  record.state = r.state();
  record.priority = r.priority();
  record.submitted_at = now;
  record.updated_at = now;
  record.body = r.SerializeAsString();

  QueueName queue{receiver->id, refbroker::v1::REFERRALS};
  refbroker::v1::Delivery payload;
  *payload.mutable_referral() = r;
  storage::NewMessage message{queue.ToString(), r.priority(), r.id(), payload.SerializeAsString()};

  ASSIGN_OR_RETURN(storage::SubmitResult stored, store_.SubmitReferral(record, message));
  SubmitOutcome out;
  out.duplicate = stored.duplicate;
  if (!out.referral.ParseFromString(stored.referral.body)) {
    return absl::DataLossError("storage: stored referral does not parse");
  }
  out.referral.set_state(static_cast<refbroker::v1::ReferralState>(stored.referral.state));
  *out.referral.mutable_updated_at() =
      TimeUtil::MicrosecondsToTimestamp(stored.referral.updated_at);
  if (!out.duplicate) {
    spdlog::info("referral submitted id={} from={} to={} priority={}", out.referral.id(), caller.id,
                 receiver->id, refbroker::v1::Priority_Name(out.referral.priority()));
    notify_(queue.ToString());
  } else {
    spdlog::info("referral resubmitted id={} from={} (duplicate request id)", out.referral.id(),
                 caller.id);
  }
  return out;
}

absl::StatusOr<Referral> ReferralIntake::Get(const std::string& id, std::string* sender,
                                             std::string* receiver) {
  if (id.empty() || id.size() > 64) return absl::InvalidArgumentError("id: required, ≤64 chars");
  ASSIGN_OR_RETURN(storage::ReferralRecord rec, store_.GetReferral(id));
  Referral r;
  if (!r.ParseFromString(rec.body)) return absl::DataLossError("storage: referral does not parse");
  r.set_state(static_cast<refbroker::v1::ReferralState>(rec.state));
  *r.mutable_updated_at() = TimeUtil::MicrosecondsToTimestamp(rec.updated_at);
  if (sender) *sender = rec.sender;
  if (receiver) *receiver = rec.receiver;
  return r;
}

}  // namespace refbroker::domain

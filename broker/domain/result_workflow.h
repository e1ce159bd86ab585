#pragma once
// ResultWorkflow: result records through the broker, and mutual recognition for those who
// request them.
//
// - Publish: the performing institution publishes a record (validated, size-bounded, images by
//   reference only), durable before the answer, idempotent on its client_request_id, routed to
//   the addressed institution's RESULTS queue. If a recognizable result of the same item for
//   the same patient already existed (for the publisher, at the new result's performed time),
//   the new one uses the publisher's unused re-test reason, or is marked
//   repeat_without_reason. The broker never blocks a re-test.
// - Recognize: every stored result of the patient's items with its verdict for the caller.
// - RecordRetest / RetestSummary: the coded reasons, and the counts per institution.
// - VerdictsFor: the verdicts stamped on the results attached to a referral or a consult.
//
// Thread-safe; blocks on the store.

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/auth/registry.h"
#include "broker/common/clock.h"
#include "broker/recognition/catalogue.h"
#include "broker/storage/store.h"
#include "refbroker/v1/referral.pb.h"
#include "refbroker/v1/result.pb.h"

namespace refbroker::domain {

struct ResultLimits {
  size_t max_result_bytes = 512 * 1024;
  size_t max_waveform_bytes = 256 * 1024;
  size_t max_lab_values = 200;
  size_t max_images = 50;
};

class ResultWorkflow {
 public:
  ResultWorkflow(storage::Store& store, const auth::Registry& registry,
                 const recognition::CatalogueHolder& catalogue, const Clock& clock,
                 ResultLimits limits, std::function<void(const std::string& queue)> notify);

  absl::StatusOr<refbroker::v1::PublishResultResponse> Publish(
      const auth::Principal& caller, const refbroker::v1::ResultRecord& result);
  absl::StatusOr<refbroker::v1::ResultRecord> Get(const auth::Principal& caller,
                                                  const std::string& id);
  absl::StatusOr<refbroker::v1::RecognizeResponse> Recognize(
      const auth::Principal& caller, const refbroker::v1::RecognizeRequest& request);
  absl::StatusOr<refbroker::v1::RecordRetestResponse> RecordRetest(
      const auth::Principal& caller, const refbroker::v1::Retest& retest);
  absl::StatusOr<refbroker::v1::ListResultsResponse> List(
      const auth::Principal& caller, const refbroker::v1::ListResultsRequest& request);
  absl::StatusOr<refbroker::v1::RetestSummaryResponse> Summary(
      const auth::Principal& caller, const refbroker::v1::RetestSummaryRequest& request);

  // The verdict of each of the `patient`'s results `result_ids` for `receiver`.
  // INVALID_ARGUMENT naming "<field>[i]" (e.g. "referral.attached_result_ids[0]") for an
  // unknown result or another patient's.
  absl::StatusOr<std::vector<refbroker::v1::RecognitionVerdict>> VerdictsFor(
      const refbroker::v1::Patient& patient,
      const google::protobuf::RepeatedPtrField<std::string>& result_ids,
      const std::string& receiver, const std::string& field);

 private:
  absl::Status Validate(const auth::Principal& caller, const refbroker::v1::ResultRecord& r,
                        Micros now) const;
  bool MayRead(const auth::Principal& caller, const refbroker::v1::ResultRecord& r) const;
  // The verdict on a stored result under `catalogue`: one snapshot per request, so every
  // verdict of an answer (and its catalogue_version) comes from the same catalogue.
  refbroker::v1::RecognitionVerdict VerdictOf(const storage::ResultRow& row,
                                              const recognition::Catalogue& catalogue,
                                              const std::string& requester, Micros now) const;

  storage::Store& store_;
  const auth::Registry& registry_;
  const recognition::CatalogueHolder& catalogue_;
  const Clock& clock_;
  const ResultLimits limits_;
  std::function<void(const std::string&)> notify_;
};

}  // namespace refbroker::domain

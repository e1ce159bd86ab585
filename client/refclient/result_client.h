#pragma once
// File: client/refclient/result_client.h
//
// ResultClient: publish result records and ask which of a patient's results can be reused
// (mutual recognition, 检查检验结果互认). Publishing and re-test records are retried with their
// client_request_id, so they happen once.
//
// Example (a township clinic publishing a glucose result for the county hospital):
//
//   refbroker::v1::ResultRecord r;
//   r.set_client_request_id("LIS-2026-000981");
//   r.set_kind(refbroker::v1::LAB);
//   r.set_performing_institution(our_code);
//   r.set_addressed_to("12411723417580001B");
//   r.set_item_code("LAB-GLU");
//   ... patient, performed_at, lab_values ...
//   refclient::ResultClient results(conn);
//   auto published = results.Publish(r);
//
//   refbroker::v1::RecognizeRequest q;            // at the county hospital
//   *q.mutable_patient() = resident_id;
//   q.add_item_codes("LAB-GLU");
//   for (const auto& v : results.Recognize(q)->verdicts()) { if (v.recognizable()) ... }

#include "absl/status/statusor.h"
#include "client/refclient/connection.h"
#include "client/refclient/referral_client.h"
#include "refbroker/v1/result.grpc.pb.h"

namespace refclient {

class ResultClient {
 public:
  explicit ResultClient(Connection& connection, RetryPolicy retry = RetryPolicy())
      : connection_(connection), retry_(retry) {}

  /// Publishes a result of the caller's institution; durable when it returns.
  absl::StatusOr<refbroker::v1::PublishResultResponse> Publish(
      const refbroker::v1::ResultRecord& result);
  absl::StatusOr<refbroker::v1::ResultRecord> Get(const std::string& id);
  /// Every stored result of the items for the patient, with its verdict for the caller.
  absl::StatusOr<refbroker::v1::RecognizeResponse> Recognize(
      const refbroker::v1::RecognizeRequest& request);
  /// Records why the caller tests an item again although a recognizable result exists.
  absl::StatusOr<refbroker::v1::RecordRetestResponse> RecordRetest(
      const refbroker::v1::Retest& retest);
  absl::StatusOr<refbroker::v1::ListResultsResponse> List(
      const refbroker::v1::ListResultsRequest& request);
  absl::StatusOr<refbroker::v1::RetestSummaryResponse> Summary(
      const refbroker::v1::RetestSummaryRequest& request);

 private:
  Connection& connection_;
  RetryPolicy retry_;
};

}  // namespace refclient

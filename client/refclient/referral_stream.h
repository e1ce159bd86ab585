#pragma once
// File: client/refclient/referral_stream.h
//
// ReferralStream: many referrals submitted on one SubmitReferrals stream without waiting for
// each answer (a night's batch, a HIS catching up after an outage). Up to `window` submissions
// are unanswered at once; each answer comes to `on_result` (on the stream's reader thread) with
// the position of the submission it answers (1 for the first Send), in the order the broker
// made them durable. A refused submission refuses only itself. When the stream breaks
// (UNAVAILABLE), the unanswered ones are unknown: send them again with the same
// client_request_id (on a new stream or with ReferralClient::Submit): the broker answers a
// repeat with the original (duplicate = true), never a second referral.
//
// Example:
//
//   refclient::ReferralStream stream(conn, 64, [&](uint64_t position, auto answer) {
//     if (answer.ok()) mark_sent(batch[position - 1], answer->referral().id());
//     else report(batch[position - 1], answer.status());   // names the field
//   });
//   for (const auto& r : batch) if (!stream.Send(r).ok()) break;
//   absl::Status end = stream.Close();   // waits for every answer

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "client/refclient/connection.h"
#include "refbroker/v1/referral.grpc.pb.h"

namespace refclient {

class ReferralStream {
 public:
  using OnResult = std::function<void(
      uint64_t position, absl::StatusOr<refbroker::v1::SubmitReferralResponse> answer)>;

  /// Opens the stream. `window` ≤ 256 (the broker reads no further ahead).
  ReferralStream(Connection& connection, size_t window, OnResult on_result);
  ~ReferralStream();  ///< closes the stream (waits for the answers) if Close was not called
  ReferralStream(const ReferralStream&) = delete;
  ReferralStream& operator=(const ReferralStream&) = delete;

  /// Sends one referral, blocking while `window` submissions are unanswered. Call from one
  /// thread. Returns its position, or the stream's error once it has broken.
  absl::StatusOr<uint64_t> Send(const refbroker::v1::Referral& referral);

  /// Closes the sending side, waits for every answer and returns the stream's status (OK when
  /// it ended cleanly; then every Send was answered).
  absl::Status Close();

  /// Submissions sent and not yet answered.
  size_t unanswered();

 private:
  void ReadAnswers();

  grpc::ClientContext context_;
  std::unique_ptr<refbroker::v1::ReferralService::Stub> stub_;
  std::unique_ptr<grpc::ClientReaderWriter<refbroker::v1::SubmitReferralRequest,
                                           refbroker::v1::SubmitReferralsResult>>
      stream_;
  size_t window_;
  OnResult on_result_;
  std::mutex mu_;
  std::condition_variable answered_;
  uint64_t sent_ = 0;
  uint64_t answered_count_ = 0;
  bool broken_ = false;  // the reader saw the stream end
  bool closed_ = false;
  absl::Status status_;
  std::thread reader_;
};

}  // namespace refclient

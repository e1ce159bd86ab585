#pragma once
// File: client/refclient/consult_client.h
//
// ConsultClient: teleconsultation and remote reading (远程会诊). A township asks a county
// specialty or resource center for an opinion or a reading; the center's reading stations take
// consults from their CONSULTS queue (a Subscriber in one consumer group), accept, report, and
// talk on the consult's thread. Writes carry a client_request_id and are retried, so they
// happen once.
//
// Example (a township clinic asks the ECG center to read a tracing, then reads the report):
//
//   refclient::ConsultClient consults(conn);
//   refbroker::v1::Consult c;  // patient, from, target {ecg center, ECG_READING}, question, ...
//   auto requested = consults.Request(c);
//   ... the report arrives on our CONSULT_UPDATES queue (ConsultUpdate.report) ...
//   bool intact = refclient::VerifyReportDigest(update.report());
//
// A live session (both sides connected):
//
//   auto session = refclient::ConsultSession::Join(conn, consult_id);
//   (*session)->Send(message);                    // stored, then echoed to every participant
//   auto next = (*session)->Next(std::chrono::seconds(5));

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/status/statusor.h"
#include "client/refclient/connection.h"
#include "client/refclient/referral_client.h"
#include "refbroker/v1/consult.grpc.pb.h"

namespace refclient {

class ConsultClient {
 public:
  explicit ConsultClient(Connection& connection, RetryPolicy retry = RetryPolicy())
      : connection_(connection), retry_(retry) {}

  /// Requests a consult; durable when it returns (duplicate = a retry of an earlier request).
  absl::StatusOr<refbroker::v1::RequestConsultResponse> Request(
      const refbroker::v1::Consult& consult);
  absl::StatusOr<refbroker::v1::Consult> Get(const std::string& id, bool include_thread = false);
  /// Accept, decline, schedule (the consulted institution) or cancel (the requester).
  absl::StatusOr<refbroker::v1::TransitionConsultResponse> Transition(
      const refbroker::v1::TransitionConsultRequest& request);
  /// Issues the signed report, or an addendum (content.addendum_to).
  absl::StatusOr<refbroker::v1::IssueReportResponse> IssueReport(
      const refbroker::v1::IssueReportRequest& request);
  /// Posts a message on the consult's thread.
  absl::StatusOr<refbroker::v1::PostMessageResponse> Post(
      const refbroker::v1::ConsultMessage& message);
  /// Turns the consult into an UP referral carrying its attachments.
  absl::StatusOr<refbroker::v1::ConvertToReferralResponse> Convert(
      const refbroker::v1::ConvertToReferralRequest& request);
  absl::StatusOr<refbroker::v1::ListConsultsResponse> List(
      const refbroker::v1::ListConsultsRequest& request);

 private:
  Connection& connection_;
  RetryPolicy retry_;
};

/// True when the report's sha256 is the SHA-256 of its content (deterministic protobuf
/// serialization), i.e. the report is as the consultant issued it.
bool VerifyReportDigest(const refbroker::v1::ConsultReport& report);

/// One live session on a consult's thread (ConsultService.Session).
class ConsultSession {
 public:
  /// Joins the consult's thread; returns once the broker admitted the caller (a party of the
  /// consult), or its refusal (PERMISSION_DENIED, NOT_FOUND, ...).
  static absl::StatusOr<std::unique_ptr<ConsultSession>> Join(Connection& connection,
                                                              const std::string& consult_id);
  ~ConsultSession();  // closes the stream

  /// Sends a message (client_request_id and doctor required); it comes back through Next()
  /// once stored, like everyone else's.
  absl::Status Send(const refbroker::v1::ConsultMessage& message);
  /// The next stored message of the thread, or nullopt after `timeout` or when the stream ended.
  std::optional<refbroker::v1::ConsultMessage> Next(std::chrono::milliseconds timeout);
  /// Closes the sending side and returns the stream's final status.
  absl::Status Close();

 private:
  ConsultSession() = default;
  void ReadLoop();

  std::unique_ptr<refbroker::v1::ConsultService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<refbroker::v1::SessionFrame, refbroker::v1::SessionFrame>>
      stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<refbroker::v1::ConsultMessage> received_;  // guarded by mu_
  bool ended_ = false;                                  // guarded by mu_
  bool closed_ = false;
  std::mutex write_mu_;
  std::thread reader_;
  absl::Status final_;
};

}  // namespace refclient

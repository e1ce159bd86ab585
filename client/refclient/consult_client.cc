#include "client/refclient/consult_client.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/sha.h>

#include "client/refclient/internal/retry.h"

namespace refclient {
namespace {

namespace v1 = refbroker::v1;
using Service = refbroker::v1::ConsultService;

template <typename Response, typename Call>
absl::StatusOr<Response> Run(Connection& connection, const RetryPolicy& retry, Call call) {
  return internal::CallWithRetries<Service, Response>(connection, retry, call);
}

using internal::Once;

}  // namespace

absl::StatusOr<v1::RequestConsultResponse> ConsultClient::Request(const v1::Consult& consult) {
  v1::RequestConsultRequest req;
  *req.mutable_consult() = consult;
  return Run<v1::RequestConsultResponse>(
      connection_, retry_,
      [&](auto& stub, auto& ctx, auto& resp) { return stub.RequestConsult(&ctx, req, &resp); });
}

absl::StatusOr<v1::Consult> ConsultClient::Get(const std::string& id, bool include_thread) {
  v1::GetConsultRequest req;
  req.set_id(id);
  req.set_include_thread(include_thread);
  return Run<v1::Consult>(connection_, Once(retry_), [&](auto& stub, auto& ctx, auto& resp) {
    return stub.GetConsult(&ctx, req, &resp);
  });
}

absl::StatusOr<v1::TransitionConsultResponse> ConsultClient::Transition(
    const v1::TransitionConsultRequest& req) {
  return Run<v1::TransitionConsultResponse>(
      connection_, retry_,
      [&](auto& stub, auto& ctx, auto& resp) { return stub.TransitionConsult(&ctx, req, &resp); });
}

absl::StatusOr<v1::IssueReportResponse> ConsultClient::IssueReport(
    const v1::IssueReportRequest& req) {
  return Run<v1::IssueReportResponse>(connection_, retry_, [&](auto& stub, auto& ctx, auto& resp) {
    return stub.IssueReport(&ctx, req, &resp);
  });
}

absl::StatusOr<v1::PostMessageResponse> ConsultClient::Post(const v1::ConsultMessage& message) {
  v1::PostMessageRequest req;
  *req.mutable_message() = message;
  return Run<v1::PostMessageResponse>(connection_, retry_, [&](auto& stub, auto& ctx, auto& resp) {
    return stub.PostMessage(&ctx, req, &resp);
  });
}

absl::StatusOr<v1::ConvertToReferralResponse> ConsultClient::Convert(
    const v1::ConvertToReferralRequest& req) {
  return Run<v1::ConvertToReferralResponse>(
      connection_, retry_,
      [&](auto& stub, auto& ctx, auto& resp) { return stub.ConvertToReferral(&ctx, req, &resp); });
}

absl::StatusOr<v1::ListConsultsResponse> ConsultClient::List(const v1::ListConsultsRequest& req) {
  return Run<v1::ListConsultsResponse>(
      connection_, Once(retry_),
      [&](auto& stub, auto& ctx, auto& resp) { return stub.ListConsults(&ctx, req, &resp); });
}

bool VerifyReportDigest(const v1::ConsultReport& report) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    report.content().SerializeToCodedStream(&coded);
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : digest) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  return hex == report.sha256();
}

absl::StatusOr<std::unique_ptr<ConsultSession>> ConsultSession::Join(
    Connection& connection, const std::string& consult_id) {
  std::unique_ptr<ConsultSession> s(new ConsultSession());
  s->stub_ = Service::NewStub(connection.channel());
  s->stream_ = s->stub_->Session(&s->context_);
  v1::SessionFrame join;
  join.set_join_consult_id(consult_id);
  // The admission; a message stored in the instant between the broker registering the session
  // and writing the admission may come first, and also means admitted.
  v1::SessionFrame admitted;
  if (!s->stream_->Write(join) || !s->stream_->Read(&admitted) ||
      (admitted.join_consult_id() != consult_id && !admitted.has_message())) {
    s->closed_ = true;
    s->stream_->WritesDone();
    grpc::Status st = s->stream_->Finish();
    if (st.ok()) return absl::UnavailableError("session: the broker did not admit the join");
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
  }
  if (admitted.has_message()) s->received_.push_back(admitted.message());
  s->reader_ = std::thread([p = s.get()] { p->ReadLoop(); });
  return s;
}

void ConsultSession::ReadLoop() {
  v1::SessionFrame frame;
  while (stream_->Read(&frame)) {
    if (!frame.has_message()) continue;
    std::lock_guard<std::mutex> lock(mu_);
    received_.push_back(frame.message());
    cv_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  ended_ = true;
  cv_.notify_all();
}

absl::Status ConsultSession::Send(const v1::ConsultMessage& message) {
  v1::SessionFrame frame;
  *frame.mutable_message() = message;
  std::lock_guard<std::mutex> lock(write_mu_);
  if (closed_ || !stream_->Write(frame)) return absl::UnavailableError("session: stream closed");
  return absl::OkStatus();
}

std::optional<v1::ConsultMessage> ConsultSession::Next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return !received_.empty() || ended_; });
  if (received_.empty()) return std::nullopt;
  v1::ConsultMessage m = std::move(received_.front());
  received_.pop_front();
  return m;
}

absl::Status ConsultSession::Close() {
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (closed_) return final_;
    closed_ = true;
    stream_->WritesDone();
  }
  if (reader_.joinable()) reader_.join();
  grpc::Status st = stream_->Finish();
  final_ = absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
  return final_;
}

ConsultSession::~ConsultSession() {
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    if (!closed_) context_.TryCancel();
  }
  if (reader_.joinable()) reader_.join();
  if (!closed_) (void)stream_->Finish();
}

}  // namespace refclient

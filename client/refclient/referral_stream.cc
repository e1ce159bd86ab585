#include "client/refclient/referral_stream.h"

#include <algorithm>

namespace refclient {

namespace v1 = refbroker::v1;

ReferralStream::ReferralStream(Connection& connection, size_t window, OnResult on_result)
    : stub_(v1::ReferralService::NewStub(connection.channel())),
      window_(std::clamp<size_t>(window, 1, 256)),
      on_result_(std::move(on_result)) {
  stream_ = stub_->SubmitReferrals(&context_);
  reader_ = std::thread([this] { ReadAnswers(); });
}

ReferralStream::~ReferralStream() {
  if (!closed_) Close().IgnoreError();
}

void ReferralStream::ReadAnswers() {
  v1::SubmitReferralsResult result;
  while (stream_->Read(&result)) {
    if (on_result_) {
      if (result.code() == 0) {
        v1::SubmitReferralResponse response;
        *response.mutable_referral() = std::move(*result.mutable_referral());
        response.set_duplicate(result.duplicate());
        on_result_(result.position(), std::move(response));
      } else {
        on_result_(result.position(),
                   absl::Status(static_cast<absl::StatusCode>(result.code()), result.message()));
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++answered_count_;
    answered_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  broken_ = true;
  answered_.notify_all();
}

absl::StatusOr<uint64_t> ReferralStream::Send(const v1::Referral& referral) {
  uint64_t position = 0;
  {
    std::unique_lock<std::mutex> lock(mu_);
    answered_.wait(lock, [this] { return broken_ || sent_ - answered_count_ < window_; });
    if (broken_ || closed_) {
      return absl::UnavailableError("the SubmitReferrals stream has ended");
    }
    position = ++sent_;  // counted before the write: its answer may come before Write returns
  }
  v1::SubmitReferralRequest request;
  *request.mutable_referral() = referral;
  if (!stream_->Write(request)) {
    return absl::UnavailableError("the SubmitReferrals stream has broken");
  }
  return position;
}

absl::Status ReferralStream::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return status_;
    closed_ = true;
  }
  stream_->WritesDone();
  reader_.join();
  status_ = FromGrpc(stream_->Finish());
  if (status_.ok() && answered_count_ != sent_) {
    status_ = absl::DataLossError("the stream ended with submissions unanswered");
  }
  return status_;
}

size_t ReferralStream::unanswered() {
  std::lock_guard<std::mutex> lock(mu_);
  return sent_ - answered_count_;
}

}  // namespace refclient

#pragma once
// SerialWriter: the write side of one server bidi stream. gRPC allows one outstanding write
// (and one read) per stream; this queues writes, starts reads, and finishes the stream once. It
// holds the reactor pointer until the reactor is done (Detach), so work finishing late on other
// threads never touches a deleted reactor. A recursive mutex, because gRPC may run a reaction
// inline from StartWrite.

#include <grpcpp/grpcpp.h>

#include <deque>
#include <mutex>
#include <optional>

#include "absl/status/status.h"
#include "broker/api/status_convert.h"

namespace refbroker::api::internal {

template <typename In, typename Out>
class SerialWriter {
 public:
  using Reactor = grpc::ServerBidiReactor<In, Out>;

  explicit SerialWriter(Reactor* reactor) : reactor_(reactor) {}
  virtual ~SerialWriter() = default;

  void Write(Out message) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (reactor_ == nullptr || finish_) return;
    pending_.push_back(std::move(message));
    StartNextLocked();
  }

  // Ends the stream with `status` (OK: a clean end) after the write in progress; queued writes
  // are dropped.
  void Finish(const absl::Status& status) { End(status, /*drop_queued=*/true); }

  // Ends the stream with `status` once every queued write has been written.
  void FinishAfterWrites(const absl::Status& status) { End(status, /*drop_queued=*/false); }

  // Starts the next read into `into` unless the stream is ending.
  void Read(In* into) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (reactor_ != nullptr && !finish_) reactor_->StartRead(into);
  }

  void OnWriteDone(bool ok) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    writing_ = false;
    if (!ok && !finish_) {
      finish_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broken");
      pending_.clear();
    }
    StartNextLocked();
  }

  void Detach() {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    reactor_ = nullptr;
  }

  bool finishing() {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    return finish_.has_value();
  }

 private:
  void End(const absl::Status& status, bool drop_queued) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (finish_) return;
    finish_ = ToGrpcStatus(status);
    if (drop_queued) pending_.clear();
    StartNextLocked();
  }

  void StartNextLocked() {
    if (reactor_ == nullptr || writing_ || finished_) return;
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      reactor_->StartWrite(&current_);
    } else if (finish_) {
      finished_ = true;
      reactor_->Finish(*finish_);
    }
  }

  std::recursive_mutex mu_;
  Reactor* reactor_;
  std::deque<Out> pending_;
  Out current_;  // the message being written; must live until OnWriteDone
  bool writing_ = false;
  bool finished_ = false;
  std::optional<grpc::Status> finish_;
};

}  // namespace refbroker::api::internal

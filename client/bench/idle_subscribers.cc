#include "client/bench/idle_subscribers.h"

#include <condition_variable>
#include <mutex>

namespace refbench {

namespace v1 = refbroker::v1;

class IdleSubscribers::Stream final
    : public grpc::ClientBidiReactor<v1::SubscribeRequest, v1::Delivery> {
 public:
  Stream(v1::DeliveryService::Stub& stub, const std::string& owner, v1::QueueKind kind,
         const std::string& group) {
    open_.mutable_open()->mutable_queue()->set_owner(owner);
    open_.mutable_open()->mutable_queue()->set_kind(kind);
    open_.mutable_open()->set_consumer_group(group);
    open_.mutable_open()->set_window(16);
    stub.async()->Subscribe(&context_, this);
    StartWrite(&open_);
    StartRead(&delivery_);
    StartCall();
  }

  void OnWriteDone(bool) override {}
  void OnReadDone(bool ok) override {
    if (ok) StartRead(&delivery_);  // nothing should arrive; keep reading if it does
  }
  void OnDone(const grpc::Status& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    status_ = s;
    cv_.notify_all();
  }

  void Cancel() { context_.TryCancel(); }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }
  // An error before we cancelled it.
  bool Failed(absl::Status* why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!done_) return false;
    *why =
        absl::Status(static_cast<absl::StatusCode>(status_.error_code()), status_.error_message());
    return true;
  }

 private:
  grpc::ClientContext context_;
  v1::SubscribeRequest open_;
  v1::Delivery delivery_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  grpc::Status status_;
};

IdleSubscribers::IdleSubscribers(refclient::Connection& connection, const std::string& owner,
                                 v1::QueueKind kind, const std::string& group_prefix, int count)
    : stub_(v1::DeliveryService::NewStub(connection.channel())) {
  for (int i = 0; i < count; ++i) {
    streams_.push_back(
        std::make_unique<Stream>(*stub_, owner, kind, group_prefix + "-" + std::to_string(i)));
  }
}

IdleSubscribers::~IdleSubscribers() {
  for (auto& s : streams_) s->Cancel();
  for (auto& s : streams_) s->Wait();
}

int IdleSubscribers::failed() const {
  int n = 0;
  absl::Status why;
  for (const auto& s : streams_) n += s->Failed(&why) ? 1 : 0;
  return n;
}

absl::Status IdleSubscribers::first_error() const {
  absl::Status why;
  for (const auto& s : streams_) {
    if (s->Failed(&why)) return why;
  }
  return absl::OkStatus();
}

}  // namespace refbench

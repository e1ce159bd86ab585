#include "client/bench/noop_server.h"

#include <atomic>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "refbroker/v1/delivery.grpc.pb.h"
#include "refbroker/v1/referral.grpc.pb.h"

namespace refbench {
namespace {

namespace v1 = refbroker::v1;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--certs: cannot read ", path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class RelayStream;

// The relay (NoopServer::set_relay): each submission is also handed to the Subscribe stream
// open on the no-op server as a Delivery, which that stream sends within its window while it
// takes the acks; nothing is stored. One mutex guards the relay and its stream.
class Relay {
 public:
  void set_enabled(bool on) {
    std::lock_guard<std::recursive_mutex> lock(mu);
    enabled_ = on;
    if (!on) waiting.clear();
  }
  // Any thread, for every submission the no-op server reads.
  void Submitted(const v1::Referral& referral);
  void AttachLocked(RelayStream* s) {
    if (subscriber_ == nullptr) subscriber_ = s;
  }
  void DetachLocked(RelayStream* s) {
    if (subscriber_ == s) subscriber_ = nullptr;
  }

  std::recursive_mutex mu;
  std::deque<v1::Delivery> waiting;  // submitted, not yet sent

 private:
  std::atomic<bool> enabled_{false};
  uint64_t sequence_ = 0;  // guarded by mu
  RelayStream* subscriber_ = nullptr;
};

// A Subscribe stream of the relay: SubscribeOpen sets the window; each ack frees a place in it.
class RelayStream final : public grpc::ServerBidiReactor<v1::SubscribeRequest, v1::Delivery> {
 public:
  explicit RelayStream(Relay* relay) : relay_(relay) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(relay_->mu);
    if (!ok) {
      half_closed_ = true;
      relay_->DetachLocked(this);
      MaybeFinishLocked();
      return;
    }
    if (request_.has_open()) {
      window_ = request_.open().window() > 0 ? request_.open().window() : 16;
      relay_->AttachLocked(this);
    } else if (request_.has_ack() && in_flight_ > 0) {
      --in_flight_;
    }
    PumpLocked();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(relay_->mu);
    writing_ = false;
    if (!ok) {
      half_closed_ = true;
      relay_->DetachLocked(this);
    }
    PumpLocked();
    MaybeFinishLocked();
  }

  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(relay_->mu);
      relay_->DetachLocked(this);
    }
    delete this;
  }

  // Sends the next waiting delivery when the window has room and no write is under way.
  void PumpLocked() {
    if (writing_ || half_closed_ || in_flight_ >= window_ || relay_->waiting.empty()) return;
    current_ = std::move(relay_->waiting.front());
    relay_->waiting.pop_front();
    writing_ = true;
    ++in_flight_;
    StartWrite(&current_);
  }

 private:
  void MaybeFinishLocked() {
    if (half_closed_ && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  Relay* relay_;
  v1::SubscribeRequest request_;
  v1::Delivery current_;
  uint32_t window_ = 0, in_flight_ = 0;
  bool writing_ = false, half_closed_ = false, finished_ = false;
};

void Relay::Submitted(const v1::Referral& referral) {
  if (!enabled_) return;
  // Built outside the lock, which the clinics' streams and the subscriber share: the copy of the
  // referral is the relay's own cost, not a point where the streams wait for each other.
  v1::Delivery d;
  d.mutable_queue()->set_owner(referral.to_institution());
  d.mutable_queue()->set_kind(v1::REFERRALS);
  d.set_priority(referral.priority());
  d.set_attempt(1);
  *d.mutable_referral() = referral;
  std::lock_guard<std::recursive_mutex> lock(mu);
  if (!enabled_) return;
  d.set_sequence(++sequence_);
  waiting.push_back(std::move(d));
  if (subscriber_ != nullptr) subscriber_->PumpLocked();
}

// Answers each submission of a SubmitReferrals stream as soon as it is read: reading goes on
// while answers are written, as in the broker.
class DiscardingStream final
    : public grpc::ServerBidiReactor<v1::SubmitReferralRequest, v1::SubmitReferralsResult> {
 public:
  explicit DiscardingStream(Relay* relay) : relay_(relay) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (!ok) {
      half_closed_ = true;
      MaybeFinishLocked();
      return;
    }
    relay_->Submitted(request_.referral());
    v1::SubmitReferralsResult result;
    result.set_position(++read_);
    result.mutable_referral()->set_client_request_id(request_.referral().client_request_id());
    pending_.push_back(std::move(result));
    StartNextWriteLocked();
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      pending_.clear();
      half_closed_ = true;
    }
    StartNextWriteLocked();
    MaybeFinishLocked();
  }

  void OnDone() override { delete this; }

 private:
  void StartNextWriteLocked() {
    if (writing_ || pending_.empty()) return;
    current_ = std::move(pending_.front());
    pending_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }
  void MaybeFinishLocked() {
    if (half_closed_ && !writing_ && pending_.empty() && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  Relay* relay_;
  std::recursive_mutex mu_;
  v1::SubmitReferralRequest request_;
  v1::SubmitReferralsResult current_;
  std::deque<v1::SubmitReferralsResult> pending_;
  uint64_t read_ = 0;
  bool writing_ = false, half_closed_ = false, finished_ = false;
};

}  // namespace

class NoopServer::Service final : public v1::ReferralService::CallbackService {
 public:
  grpc::ServerUnaryReactor* SubmitReferral(grpc::CallbackServerContext* context,
                                           const v1::SubmitReferralRequest* request,
                                           v1::SubmitReferralResponse* response) override {
    relay.Submitted(request->referral());
    response->mutable_referral()->set_client_request_id(request->referral().client_request_id());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerBidiReactor<v1::SubmitReferralRequest, v1::SubmitReferralsResult>* SubmitReferrals(
      grpc::CallbackServerContext*) override {
    return new DiscardingStream(&relay);
  }

  Relay relay;
};

class NoopServer::Delivery final : public v1::DeliveryService::CallbackService {
 public:
  explicit Delivery(Relay* relay) : relay_(relay) {}
  grpc::ServerBidiReactor<v1::SubscribeRequest, v1::Delivery>* Subscribe(
      grpc::CallbackServerContext*) override {
    return new RelayStream(relay_);
  }

 private:
  Relay* relay_;
};

absl::StatusOr<std::unique_ptr<NoopServer>> NoopServer::Start(const std::string& certs_dir) {
  auto ca = ReadFile(certs_dir + "/ca.crt");
  auto cert = ReadFile(certs_dir + "/broker.crt");
  auto key = ReadFile(certs_dir + "/broker.key");
  for (const auto* f : {&ca, &cert, &key}) {
    if (!f->ok()) return f->status();
  }
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = *ca;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  std::unique_ptr<NoopServer> server(new NoopServer());
  server->service_ = std::make_unique<Service>();
  server->delivery_ = std::make_unique<Delivery>(&server->service_->relay);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &server->port_);
  builder.RegisterService(server->service_.get());
  builder.RegisterService(server->delivery_.get());
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) {
    return absl::UnavailableError("no-op server: could not listen on 127.0.0.1");
  }
  return server;
}

void NoopServer::set_relay(bool on) { service_->relay.set_enabled(on); }

NoopServer::~NoopServer() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

}  // namespace refbench

#include "client/bench/noop_server.h"

#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
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

// Answers each submission of a SubmitReferrals stream as soon as it is read: reading goes on
// while answers are written, as in the broker.
class DiscardingStream final
    : public grpc::ServerBidiReactor<v1::SubmitReferralRequest, v1::SubmitReferralsResult> {
 public:
  DiscardingStream() { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (!ok) {
      half_closed_ = true;
      MaybeFinishLocked();
      return;
    }
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
    response->mutable_referral()->set_client_request_id(request->referral().client_request_id());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerBidiReactor<v1::SubmitReferralRequest, v1::SubmitReferralsResult>* SubmitReferrals(
      grpc::CallbackServerContext*) override {
    return new DiscardingStream();
  }
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
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || server->port_ == 0) {
    return absl::UnavailableError("no-op server: could not listen on 127.0.0.1");
  }
  return server;
}

NoopServer::~NoopServer() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

}  // namespace refbench

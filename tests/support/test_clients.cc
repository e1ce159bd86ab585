#include "tests/support/test_clients.h"

#include <cstdio>

#include "client/refclient/admin_client.h"
#include "tests/support/broker_process.h"

namespace refbroker::testing {

std::unique_ptr<refclient::Connection> ConnectAs(const std::string& address,
                                                 const std::string& stem) {
  return ConnectToBrokers({address}, stem);
}

std::unique_ptr<refclient::Connection> ConnectToBrokers(std::vector<std::string> addresses,
                                                        const std::string& stem) {
  auto c = refclient::Connection::Create(
      refclient::CertDirOptions(std::move(addresses), CertsDir(), stem));
  if (!c.ok()) std::abort();
  return std::move(*c);
}

refbroker::v1::Referral MakeReferral(const std::string& clinic, const std::string& request_id,
                                     refbroker::v1::Priority priority, const std::string& to) {
  refsim::SyntheticReferrals gen(std::hash<std::string>()(request_id));
  return gen.Make(clinic, to, priority, request_id);
}

refbroker::v1::Consult MakeEcgConsult(const std::string& clinic, const std::string& request_id,
                                      refbroker::v1::Priority priority) {
  refsim::SyntheticReferrals gen(std::hash<std::string>()(request_id));
  return gen.MakeConsult(clinic, kEcgCenter, refbroker::v1::ECG_READING, "", priority, request_id);
}

int64_t DeadlineBreaches(refclient::Connection& caller, const std::string& owner,
                         refbroker::v1::QueueKind kind) {
  auto queues = refclient::AdminClient(caller).ListQueues(owner);
  if (!queues.ok()) return -1;
  for (const auto& q : queues->queues()) {
    if (q.queue().owner() == owner && q.queue().kind() == kind) {
      return static_cast<int64_t>(q.deadline_breaches());
    }
  }
  return -1;
}

CollectingSubscriber::CollectingSubscriber(refclient::Connection& conn, const std::string& owner,
                                           const std::string& group, uint32_t window, Decide decide,
                                           refbroker::v1::QueueKind kind)
    : subscriber_(conn,
                  [&] {
                    refclient::SubscriberOptions o;
                    o.queue.set_owner(owner);
                    o.queue.set_kind(kind);
                    o.group = group;
                    o.window = window;
                    o.reconnect_backoff = std::chrono::milliseconds(50);
                    o.max_reconnect_backoff = std::chrono::milliseconds(300);
                    return o;
                  }()),
      decide_(std::move(decide)) {
  thread_ = std::thread([this] {
    absl::Status s = subscriber_.Run([this](const refbroker::v1::Delivery& d) {
      refclient::Decision decision = decide_ ? decide_(d) : refclient::Decision::Ack();
      {
        std::lock_guard<std::mutex> lock(mu_);
        deliveries_.push_back(d);
      }
      cv_.notify_all();
      return decision;
    });
    std::lock_guard<std::mutex> lock(mu_);
    result_ = s;
    done_ = true;
    cv_.notify_all();
  });
}

CollectingSubscriber::~CollectingSubscriber() { Stop(); }

void CollectingSubscriber::Stop() {
  subscriber_.Stop();
  if (thread_.joinable()) thread_.join();
}

bool CollectingSubscriber::WaitFor(size_t n, double seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] {
    return deliveries_.size() >= n || done_;
  }) && deliveries_.size() >= n;
}

std::vector<refbroker::v1::Delivery> CollectingSubscriber::deliveries() {
  std::lock_guard<std::mutex> lock(mu_);
  return deliveries_;
}

absl::Status CollectingSubscriber::result() {
  std::lock_guard<std::mutex> lock(mu_);
  return result_;
}

int RunRefctl(const std::string& address, const std::string& args, std::string* out) {
  return RunCommand(
      std::string(REFCTL_BINARY) + " --broker " + address + " --certs " + CertsDir() + " " + args,
      out);
}

refbroker::v1::TransitionReferralRequest Act(const std::string& id, const std::string& request_id) {
  refbroker::v1::TransitionReferralRequest r;
  r.set_referral_id(id);
  r.set_client_request_id(request_id);
  r.mutable_doctor()->set_id("D-0427");
  r.mutable_doctor()->set_name("李医生");
  return r;
}

bool WaitForState(refclient::ReferralClient& client, const std::string& id,
                  refbroker::v1::ReferralState state) {
  for (int i = 0; i < 400; ++i) {
    auto r = client.Get(id);
    if (r.ok() && r->state() == state) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

int RunCommand(const std::string& command, std::string* out) {
  std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace refbroker::testing

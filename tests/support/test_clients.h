#pragma once
// Helpers for integration tests: connections as a sample principal, synthetic referrals,
// a collecting subscriber, running refctl.

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/refclient/connection.h"
#include "client/refclient/referral_client.h"
#include "client/refclient/subscriber.h"
#include "client/sim/synthetic_referral.h"

namespace refbroker::testing {

// Sample principals (deploy/registry.toml).
inline constexpr char kPeopleHospital[] = "12411723417580001B";
inline constexpr char kTcmHospital[] = "12411723417580004L";
inline constexpr char kXiyangdian[] = "124117234175811018";
inline constexpr char kGuhuai[] = "12411723417581102B";
inline constexpr char kEcgCenter[] = "12411723MB0A10013K";  // cert "ecg-center"

// A Connection to `address` authenticated with the test certificate `stem`
// (e.g. "xiyangdian-thc", "people-hospital", "operator", "stranger", "foreign-client").
std::unique_ptr<refclient::Connection> ConnectAs(const std::string& address,
                                                 const std::string& stem);

// The same with several brokers, tried in this order (the client fails over between them).
std::unique_ptr<refclient::Connection> ConnectToBrokers(std::vector<std::string> addresses,
                                                        const std::string& stem);

// A valid UP referral from `clinic` with the given request id.
refbroker::v1::Referral MakeReferral(const std::string& clinic, const std::string& request_id,
                                     refbroker::v1::Priority priority = refbroker::v1::ROUTINE,
                                     const std::string& to = "");

// A valid consult from `clinic` to the ECG center's ECG_READING service.
refbroker::v1::Consult MakeEcgConsult(const std::string& clinic, const std::string& request_id,
                                      refbroker::v1::Priority priority = refbroker::v1::ROUTINE);

// The deadline breaches `refctl queues` shows on `owner`'s queue of `kind`, as `caller` sees
// them; -1 when that queue is not listed.
int64_t DeadlineBreaches(refclient::Connection& caller, const std::string& owner,
                         refbroker::v1::QueueKind kind);

// Runs a Subscriber on a thread and records every delivery.
class CollectingSubscriber {
 public:
  using Decide = std::function<refclient::Decision(const refbroker::v1::Delivery&)>;
  CollectingSubscriber(refclient::Connection& conn, const std::string& owner,
                       const std::string& group, uint32_t window, Decide decide = nullptr,
                       refbroker::v1::QueueKind kind = refbroker::v1::REFERRALS);
  ~CollectingSubscriber();  // stops and joins

  // Waits until at least `n` deliveries arrived (true) or `seconds` passed (false).
  bool WaitFor(size_t n, double seconds);
  std::vector<refbroker::v1::Delivery> deliveries();
  absl::Status result();  // after Stop
  void Stop();
  // Acks a delivery the decide function left unanswered (Decision::None()).
  bool Ack(uint64_t sequence) { return subscriber_.Ack(sequence); }

 private:
  refclient::Subscriber subscriber_;
  Decide decide_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<refbroker::v1::Delivery> deliveries_;
  absl::Status result_;
  bool done_ = false;
  std::thread thread_;
};

// Runs refctl with `args` as the operator against `address`; returns exit code, fills stdout.
int RunRefctl(const std::string& address, const std::string& args, std::string* out);
// Runs a shell command; returns its exit code and appends its stdout and stderr to `out`.
int RunCommand(const std::string& command, std::string* out);

// A transition request of `id` by doctor D-0427, with its client request id; the caller sets
// the action.
refbroker::v1::TransitionReferralRequest Act(const std::string& id, const std::string& request_id);
// Waits (up to 10 s) until the referral reaches `state`: the receiver's system acks
// asynchronously.
bool WaitForState(refclient::ReferralClient& client, const std::string& id,
                  refbroker::v1::ReferralState state);

}  // namespace refbroker::testing

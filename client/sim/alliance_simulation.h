#pragma once
// AllianceSimulation: a county alliance's referral traffic through refbroker, for the demo, the
// crash tests' load and operators who want to see the broker work.
//
// Township clinics submit UP referrals at a total rate (each with its own certificate) and
// listen to their REFERRAL_UPDATES and REFERRALS queues; lead county hospitals subscribe to
// their REFERRALS queue and ack, and (with journeys on) their referral offices decide: accept,
// record arrival, complete with an outcome and sometimes refer back DOWN; decline some; leave a
// few undecided so they breach the decision deadline. Some clinics cancel. The run ends with a
// loss check: every referral the broker acknowledged must have reached a hospital.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "broker/auth/registry.h"
#include "client/refclient/connection.h"
#include "refbroker/v1/common.pb.h"

namespace refsim {

struct SimOptions {
  std::vector<std::string> brokers{"127.0.0.1:7443"};
  std::string certs = "certs/dev";
  double rate = 20;      // UP referrals per second, all clinics together
  double duration = 20;  // seconds of submitting
  double drain = 20;     // seconds to wait for deliveries afterwards
  std::string group = "his";
  uint32_t window = 32;
  uint64_t seed = 1;
  bool subscribe = true;
  bool journeys = true;     // hospitals decide and complete; DOWN legs; cancellations
  double refuse_share = 0;  // hospital systems nack (mapping error): retried, then dead letters
  double decline_share = 0.08;
  double ignore_share = 0.03;  // never decided: they breach the decision deadline
  double cancel_share = 0.02;
  double down_share = 0.4;     // completed UP legs continued by a DOWN leg
  double result_share = 0.3;   // referrals carrying a lab result published just before
  double retest_share = 0.1;   // recognizable results tested again with a recorded reason
  double repeat_share = 0.05;  // ... and tested again without one
  int step_ms = 100;           // time between a hospital's steps on one referral
  double consult_rate = 3;     // consults per second, all clinics together (with journeys)
  bool json = false;
  std::string patients_out;  // if set, every patient made up is written here (name, ID, phone)
};

// Appends the patient's name, identifier values and phone to o.patients_out, one patient per
// line (for the privacy test, which then searches the broker's logs for them). Thread-safe.
void RecordPatient(const SimOptions& o, const refbroker::v1::Patient& patient);

// A connection as `stem` (a certificate in o.certs); exits the process with 2 when the
// certificate files cannot be read (a simulator set-up error).
std::unique_ptr<refclient::Connection> ConnectOrExit(const SimOptions& o, const std::string& stem);

class AllianceSimulation {
 public:
  AllianceSimulation(SimOptions options, const refbroker::auth::Registry& registry);
  // Runs the whole simulation; prints progress to stderr and a summary to stdout. Returns the
  // exit code: 0 when nothing was lost and nothing valid was rejected.
  int Run();

  struct Tally {
    std::atomic<uint64_t> sent{0}, acked{0}, rejected{0}, failed{0};
    std::atomic<uint64_t> accepted{0}, declined{0}, arrived{0}, completed{0}, cancelled{0},
        cancel_too_late{0}, down_sent{0}, down_accepted{0}, transition_errors{0};
    std::atomic<uint64_t> results_published{0}, verdicts{0}, recognizable{0}, retests{0},
        repeats_without_reason{0};
    std::mutex mu;
    std::set<std::string> acked_ids;      // UP referrals the broker acknowledged
    std::set<std::string> delivered_ids;  // reached a hospital's system at least once
    std::set<std::string> refused_ids;
    std::map<int, uint64_t> township_updates;  // by ReferralAction
    std::set<std::string> loops_closed;        // UP referrals whose outcome reached the township
    uint64_t deliveries = 0;
    uint64_t Lost();
  };

 private:
  SimOptions o_;
  const refbroker::auth::Registry& registry_;
  Tally tally_;
};

}  // namespace refsim

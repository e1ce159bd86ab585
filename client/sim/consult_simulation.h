#pragma once
// ConsultSimulation: the teleconsultation and remote-reading side of refsim. Township clinics
// ask the ECG center for readings, the imaging center for image readings and the lead
// hospitals' cardiologists for opinions; each consulted institution runs two reading stations
// that share its CONSULTS worklist (one consumer group): a station takes a consult, accepts it,
// writes a line on the thread and issues its signed report (a reading also as a result
// record). The clinics read their reports and check each digest.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/auth/registry.h"
#include "client/refclient/subscriber.h"
#include "client/sim/alliance_simulation.h"

namespace refsim {

class ConsultSimulation {
 public:
  struct Tally {
    std::atomic<uint64_t> requested{0}, rejected{0}, failed{0}, accepted{0}, reported{0},
        readings{0}, messages{0}, reports_received{0}, digests_bad{0}, step_errors{0};
    std::atomic<uint64_t> turnaround_ms_total{0};  // request to report received, summed
  };

  ConsultSimulation(const SimOptions& options, const refbroker::auth::Registry& registry);
  ~ConsultSimulation();  // Stop()

  // Starts the stations and the clinics' listeners, and requests until `end`.
  void Start(std::chrono::steady_clock::time_point end);
  // True when every requested consult's report has reached its clinic.
  bool Done() const;
  void Stop();
  void PrintSummary() const;
  const Tally& tally() const { return tally_; }

 private:
  struct Listener;
  void Listen(const refbroker::auth::Principal& who, refbroker::v1::QueueKind kind,
              const std::string& group, uint32_t window, refclient::Subscriber::Handler handle);
  refclient::Decision Read(const refbroker::auth::Principal& station_of,
                           const refbroker::v1::Delivery& d, int station);
  refclient::Decision Receive(const refbroker::v1::Delivery& d);
  void RunClinic(const refbroker::auth::Principal& clinic,
                 std::chrono::steady_clock::time_point end, double per_clinic, uint64_t seed);

  SimOptions o_;
  const refbroker::auth::Registry& registry_;
  Tally tally_;
  mutable std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> open_;  // consult id -> requested
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::thread> clinics_;
};

}  // namespace refsim

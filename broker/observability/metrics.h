#pragma once
// Metrics: the broker's Prometheus metrics (prometheus-cpp core registry, text exposition).
// Served over HTTP by MetricsHttpServer. Thread-safe.

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace refbroker::observability {

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // refbroker_rpcs_total{method, code}
  void CountRpc(const std::string& method, absl::StatusCode code);
  // refbroker_submit_seconds: submit to durable answer.
  void ObserveSubmitLatency(double seconds);
  // refbroker_rpc_seconds{method, code}: receipt to answer, every unary RPC.
  void ObserveRpc(const std::string& method, absl::StatusCode code, double seconds);
  // refbroker_commit_batch_size and refbroker_commit_seconds: requests per group commit and its
  // duration (BEGIN to the end of COMMIT, which includes the fsync).
  void ObserveCommit(size_t batch, double seconds);
  // refbroker_queue_<name>{queue, owner, direction}: one gauge per queue, set each scrape.
  struct QueueRow {
    std::string queue, owner, direction;
    double depth = 0, in_flight = 0, oldest_age_seconds = 0, dead_letters = 0, consumers = 0,
           retained = 0;
  };
  void SetQueues(const std::vector<QueueRow>& rows);
  // Sets a gauge refbroker_<name> (created on first use).
  void SetGauge(const std::string& name, const std::string& help, double value);
  // Brings a monotonic counter refbroker_<name>_total up to `value`.
  void SyncCounter(const std::string& name, const std::string& help, double value);
  // Called before each exposition to refresh gauges from the broker's state.
  void SetRefresher(std::function<void(Metrics&)> refresher);

  // Prometheus text exposition format (0.0.4).
  std::string Expose();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Histogram& submit_seconds_;
  prometheus::Family<prometheus::Histogram>& rpc_seconds_;
  prometheus::Histogram& commit_batch_;
  prometheus::Histogram& commit_seconds_;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> queue_families_;  // guarded
  std::mutex mu_;
  std::map<std::string, prometheus::Gauge*> gauges_;      // guarded by mu_
  std::map<std::string, prometheus::Counter*> counters_;  // guarded by mu_
  std::function<void(Metrics&)> refresher_;               // guarded by mu_
};

}  // namespace refbroker::observability

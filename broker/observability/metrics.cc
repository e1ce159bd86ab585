#include "broker/observability/metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace refbroker::observability {

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      rpcs_(prometheus::BuildCounter()
                .Name("refbroker_rpcs_total")
                .Help("RPCs answered, by method and gRPC status code")
                .Register(*registry_)),
      submit_seconds_(prometheus::BuildHistogram()
                          .Name("refbroker_submit_seconds")
                          .Help("SubmitReferral time from receipt to durable answer")
                          .Register(*registry_)
                          .Add({}, prometheus::Histogram::BucketBoundaries{
                                       0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
                                       1, 2, 5})) {}

void Metrics::CountRpc(const std::string& method, absl::StatusCode code) {
  rpcs_.Add({{"method", method}, {"code", absl::StatusCodeToString(code)}}).Increment();
}

void Metrics::ObserveSubmitLatency(double seconds) { submit_seconds_.Observe(seconds); }

void Metrics::SetGauge(const std::string& name, const std::string& help, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = gauges_.find(name);
  if (it == gauges_.end()) {
    auto& g = prometheus::BuildGauge().Name("refbroker_" + name).Help(help).Register(*registry_);
    it = gauges_.emplace(name, &g.Add({})).first;
  }
  it->second->Set(value);
}

void Metrics::SyncCounter(const std::string& name, const std::string& help, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counters_.find(name);
  if (it == counters_.end()) {
    auto& c = prometheus::BuildCounter()
                  .Name("refbroker_" + name + "_total")
                  .Help(help)
                  .Register(*registry_);
    it = counters_.emplace(name, &c.Add({})).first;
  }
  double delta = value - it->second->Value();
  if (delta > 0) it->second->Increment(delta);
}

void Metrics::SetRefresher(std::function<void(Metrics&)> refresher) {
  std::lock_guard<std::mutex> lock(mu_);
  refresher_ = std::move(refresher);
}

std::string Metrics::Expose() {
  std::function<void(Metrics&)> refresher;
  {
    std::lock_guard<std::mutex> lock(mu_);
    refresher = refresher_;
  }
  if (refresher) refresher(*this);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace refbroker::observability

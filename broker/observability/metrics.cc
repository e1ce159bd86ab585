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
      submit_seconds_(
          prometheus::BuildHistogram()
              .Name("refbroker_submit_seconds")
              .Help("SubmitReferral time from receipt to durable answer")
              .Register(*registry_)
              .Add({},
                   prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                           0.05, 0.1, 0.2, 0.5, 1, 2, 5})),
      rpc_seconds_(prometheus::BuildHistogram()
                       .Name("refbroker_rpc_seconds")
                       .Help("Unary RPC time from receipt to answer, by method and status code")
                       .Register(*registry_)),
      commit_batch_(
          prometheus::BuildHistogram()
              .Name("refbroker_commit_batch_size")
              .Help("Write requests carried by one group commit (one fsync)")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256})),
      commit_seconds_(
          prometheus::BuildHistogram()
              .Name("refbroker_commit_seconds")
              .Help("Group commit duration, BEGIN to the end of COMMIT (incl. fsync)")
              .Register(*registry_)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.0002, 0.0005, 0.001, 0.002, 0.005,
                                                               0.01, 0.02, 0.05, 0.1, 0.5})) {
  for (const auto& [name, help] : std::vector<std::pair<std::string, std::string>>{
           {"depth", "Messages not yet acked by every consumer group"},
           {"in_flight", "Messages delivered and not yet acked"},
           {"oldest_age_seconds", "Age of the oldest unacked message"},
           {"dead_letters", "Messages that used up their attempts"},
           {"consumers", "Subscribe streams connected to the queue"},
           {"retained", "Messages kept in the store (acked ones until pruned)"}}) {
    queue_families_[name] =
        &prometheus::BuildGauge().Name("refbroker_queue_" + name).Help(help).Register(*registry_);
  }
}

void Metrics::ObserveRpc(const std::string& method, absl::StatusCode code, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets{
      0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5};
  rpc_seconds_.Add({{"method", method}, {"code", absl::StatusCodeToString(code)}}, kBuckets)
      .Observe(seconds);
}

void Metrics::ObserveCommit(size_t batch, double seconds) {
  commit_batch_.Observe(static_cast<double>(batch));
  commit_seconds_.Observe(seconds);
}

void Metrics::SetQueues(const std::vector<QueueRow>& rows) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const QueueRow& r : rows) {
    std::map<std::string, std::string> labels{
        {"queue", r.queue}, {"owner", r.owner}, {"direction", r.direction}};
    queue_families_["depth"]->Add(labels).Set(r.depth);
    queue_families_["in_flight"]->Add(labels).Set(r.in_flight);
    queue_families_["oldest_age_seconds"]->Add(labels).Set(r.oldest_age_seconds);
    queue_families_["dead_letters"]->Add(labels).Set(r.dead_letters);
    queue_families_["consumers"]->Add(labels).Set(r.consumers);
    queue_families_["retained"]->Add(labels).Set(r.retained);
  }
}

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

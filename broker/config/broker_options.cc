#include "broker/config/broker_options.h"

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/storage/internal/pg_conn.h"

namespace refbroker::config {
namespace {

std::string Resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || base_dir.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

void GetString(const toml::table& t, const char* section, const char* key, std::string& out) {
  if (auto v = t[section][key].value<std::string>()) out = *v;
}

// Integer keys take TOML integers only: toml++ would cast a float (2.5e33) to an integer, which
// is undefined behaviour, and an int field would silently wrap a larger integer. The first key of
// another type or out of range is the error LoadString answers.
struct Integers {
  absl::Status error;

  std::optional<int64_t> Get(toml::node_view<const toml::node> node, const std::string& key) {
    if (!node) return std::nullopt;
    if (const auto* i = node.as_integer()) return i->get();
    Fail(absl::StrCat("config ", key, ": must be an integer"));
    return std::nullopt;
  }
  std::optional<int> GetInt(toml::node_view<const toml::node> node, const std::string& key) {
    auto v = Get(node, key);
    if (!v) return std::nullopt;
    if (*v < std::numeric_limits<int>::min() || *v > std::numeric_limits<int>::max()) {
      Fail(absl::StrCat("config ", key, ": ", *v, " is too large"));
      return std::nullopt;
    }
    return static_cast<int>(*v);
  }
  void Fail(std::string message) {
    if (error.ok()) error = absl::InvalidArgumentError(std::move(message));
  }
};

void GetInt(const toml::table& t, const char* section, const char* key, int& out, Integers& ints) {
  if (auto v = ints.GetInt(t[section][key], absl::StrCat(section, ".", key))) out = *v;
}

absl::Status Range(const char* key, int value, int lo, int hi) {
  if (value < lo || value > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", key, ": ", value, " is outside ", lo, "..", hi));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BrokerOptions> BrokerOptions::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config ", path, ": cannot be read"));
  std::ostringstream text;
  text << in.rdbuf();
  std::string dir = std::filesystem::absolute(path).parent_path().string();
  auto opts = LoadString(text.str(), dir);
  if (!opts.ok()) {
    return absl::Status(opts.status().code(), absl::StrCat(path, ": ", opts.status().message()));
  }
  return opts;
}

absl::StatusOr<BrokerOptions> BrokerOptions::LoadString(const std::string& text,
                                                        const std::string& base_dir) {
  toml::table t;
  try {
    t = toml::parse(text);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", std::string(e.description()), " at line ", e.source().begin.line));
  }
  BrokerOptions o;
  Integers ints;
  GetString(t, "server", "listen", o.server.listen);
  GetString(t, "server", "port_file", o.server.port_file);
  GetString(t, "server", "metrics_listen", o.server.metrics_listen);
  GetString(t, "server", "status_listen", o.server.status_listen);
  GetInt(t, "server", "max_message_bytes", o.server.max_message_bytes, ints);
  GetInt(t, "server", "workers", o.server.workers, ints);
  GetInt(t, "server", "drain_seconds", o.server.drain_seconds, ints);
  GetString(t, "tls", "ca", o.tls.ca);
  GetString(t, "tls", "cert", o.tls.cert);
  GetString(t, "tls", "key", o.tls.key);
  GetString(t, "tls", "crl", o.tls.crl);
  GetString(t, "storage", "engine", o.storage.engine);
  GetString(t, "storage", "path", o.storage.path);
  GetString(t, "storage", "conninfo", o.storage.conninfo);
  GetString(t, "storage", "schema", o.storage.schema);
  GetInt(t, "storage", "readers", o.storage.readers, ints);
  GetInt(t, "storage", "max_batch", o.storage.max_batch, ints);
  GetInt(t, "storage", "checkpoint_interval_ms", o.storage.checkpoint_interval_ms, ints);
  GetInt(t, "storage", "slow_statement_ms", o.storage.slow_statement_ms, ints);
  GetInt(t, "delivery", "ack_deadline_ms", o.delivery.ack_deadline_ms, ints);
  GetInt(t, "delivery", "max_attempts", o.delivery.max_attempts, ints);
  GetInt(t, "delivery", "nack_retry_delay_ms", o.delivery.nack_retry_delay_ms, ints);
  GetInt(t, "delivery", "retention_hours", o.delivery.retention_hours, ints);
  GetInt(t, "delivery", "retention_seconds", o.delivery.retention_seconds, ints);
  GetInt(t, "delivery", "prune_interval_s", o.delivery.prune_interval_s, ints);
  GetInt(t, "delivery", "max_window", o.delivery.max_window, ints);
  GetInt(t, "delivery", "workers", o.delivery.workers, ints);
  GetInt(t, "audit", "retention_days", o.audit.retention_days, ints);
  if (const toml::table* l = t["limits"].as_table()) {
    if (auto v = (*l)["calls_per_second"].value<double>()) o.limits.calls_per_second = *v;
    if (auto v = (*l)["burst"].value<double>()) o.limits.burst = *v;
    if (auto v = ints.GetInt((*l)["max_streams"], "limits.max_streams")) o.limits.max_streams = *v;
  }
  GetString(t, "audit", "archive_dir", o.audit.archive_dir);
  GetInt(t, "audit", "archive_interval_s", o.audit.archive_interval_s, ints);
  GetInt(t, "recognition", "result_retention_days", o.recognition.result_retention_days, ints);
  if (const toml::table* ref = t["referral"].as_table()) {
    if (auto v = ints.Get((*ref)["emergency_deadline_s"], "referral.emergency_deadline_s"))
      o.referral.emergency_deadline_s = *v;
    if (auto v = ints.Get((*ref)["urgent_deadline_s"], "referral.urgent_deadline_s"))
      o.referral.urgent_deadline_s = *v;
    if (auto v = ints.Get((*ref)["routine_deadline_s"], "referral.routine_deadline_s"))
      o.referral.routine_deadline_s = *v;
    if (const toml::array* arr = (*ref)["reroute"].as_array()) {
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table* r = (*arr)[i].as_table();
        if (r == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("config referral.reroute[", i, "]: not a table"));
        }
        RerouteOption ro;
        ro.from = (*r)["from"].value_or(std::string());
        ro.specialty = (*r)["specialty"].value_or(std::string());
        ro.to = (*r)["to"].value_or(std::string());
        if (ro.from.empty() || ro.to.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("config referral.reroute[", i, "]: from and to are required"));
        }
        o.referral.reroutes.push_back(std::move(ro));
      }
    }
  }
  if (const toml::table* c = t["consult"].as_table()) {
    auto read = [&ints](const toml::table* d, PriorityDeadlineOption& into,
                        const std::string& where) {
      if (d == nullptr) return;
      if (auto v = ints.Get((*d)["emergency_s"], where + ".emergency_s")) into.emergency_s = *v;
      if (auto v = ints.Get((*d)["urgent_s"], where + ".urgent_s")) into.urgent_s = *v;
      if (auto v = ints.Get((*d)["routine_s"], where + ".routine_s")) into.routine_s = *v;
    };
    read((*c)["accept"].as_table(), o.consult.accept, "consult.accept");
    if (const toml::table* report = (*c)["report"].as_table()) {
      read(report, o.consult.report, "consult.report");
      for (const auto& [key, node] : *report) {
        if (const toml::table* per = node.as_table()) {
          std::string service(key.str());
          if (!o.consult.report_by_service.count(service)) {
            o.consult.report_by_service[service] = o.consult.report;
          }
          read(per, o.consult.report_by_service[service], "consult.report." + service);
        }
      }
    }
  }
  GetString(t, "recognition", "catalogue", o.recognition.catalogue_path);
  GetInt(t, "recognition", "max_result_kb", o.recognition.max_result_kb, ints);
  GetInt(t, "recognition", "max_waveform_kb", o.recognition.max_waveform_kb, ints);
  GetString(t, "log", "level", o.log.level);
  GetString(t, "log", "format", o.log.format);
  GetString(t, "registry", "path", o.registry_path);
  if (!ints.error.ok()) return ints.error;
  o.tls.ca = Resolve(base_dir, o.tls.ca);
  o.tls.cert = Resolve(base_dir, o.tls.cert);
  o.tls.key = Resolve(base_dir, o.tls.key);
  if (!o.tls.crl.empty()) o.tls.crl = Resolve(base_dir, o.tls.crl);
  o.storage.path = Resolve(base_dir, o.storage.path);
  o.registry_path = Resolve(base_dir, o.registry_path);
  o.audit.archive_dir = Resolve(base_dir, o.audit.archive_dir);
  o.recognition.catalogue_path = Resolve(base_dir, o.recognition.catalogue_path);
  o.server.port_file = Resolve(base_dir, o.server.port_file);
  return o;
}

absl::Status BrokerOptions::Validate() const {
  if (server.listen.empty()) return absl::InvalidArgumentError("config server.listen: required");
  if (tls.ca.empty() || tls.cert.empty() || tls.key.empty()) {
    return absl::InvalidArgumentError("config tls.ca, tls.cert, tls.key: all required (mTLS)");
  }
  if (storage.engine == "sqlite") {
    if (storage.path.empty()) return absl::InvalidArgumentError("config storage.path: required");
  } else if (storage.engine == "postgres") {
    if (storage.conninfo.empty()) {
      return absl::InvalidArgumentError(
          "config storage.conninfo: required with engine = \"postgres\" (a libpq connection "
          "string)");
    }
    if (!storage::internal::IsValidPgIdentifier(storage.schema)) {
      return absl::InvalidArgumentError(
          "config storage.schema: 1-63 lower-case letters, digits or '_', not starting with a "
          "digit or pg_");
    }
    RETURN_IF_ERROR(Range("storage.readers", storage.readers, 1, 64));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("config storage.engine: '", storage.engine,
                                                   "' is not supported (sqlite, postgres)"));
  }
  RETURN_IF_ERROR(Range("server.max_message_bytes", server.max_message_bytes, 4096, 64 << 20));
  RETURN_IF_ERROR(Range("server.workers", server.workers, 2, 1024));
  RETURN_IF_ERROR(Range("server.drain_seconds", server.drain_seconds, 0, 600));
  RETURN_IF_ERROR(Range("storage.max_batch", storage.max_batch, 1, 100000));
  RETURN_IF_ERROR(
      Range("storage.checkpoint_interval_ms", storage.checkpoint_interval_ms, 0, 60000));
  RETURN_IF_ERROR(Range("storage.slow_statement_ms", storage.slow_statement_ms, 0, 3600000));
  RETURN_IF_ERROR(Range("delivery.ack_deadline_ms", delivery.ack_deadline_ms, 100, 86400000));
  RETURN_IF_ERROR(Range("delivery.max_attempts", delivery.max_attempts, 1, 1000));
  RETURN_IF_ERROR(Range("delivery.nack_retry_delay_ms", delivery.nack_retry_delay_ms, 0, 86400000));
  RETURN_IF_ERROR(Range("delivery.retention_hours", delivery.retention_hours, 1, 24 * 3650));
  RETURN_IF_ERROR(
      Range("delivery.retention_seconds", delivery.retention_seconds, 0, 24 * 3650 * 3600));
  RETURN_IF_ERROR(Range("delivery.prune_interval_s", delivery.prune_interval_s, 1, 86400));
  RETURN_IF_ERROR(Range("delivery.max_window", delivery.max_window, 1, 100000));
  RETURN_IF_ERROR(Range("delivery.workers", delivery.workers, 1, 256));
  RETURN_IF_ERROR(Range("audit.retention_days", audit.retention_days, 183, 36500));
  if (!(limits.calls_per_second >= 1 && limits.calls_per_second <= 1e6)) {
    return absl::InvalidArgumentError("config limits.calls_per_second: outside 1..1000000");
  }
  if (!(limits.burst >= 1 && limits.burst <= 1e7)) {
    return absl::InvalidArgumentError("config limits.burst: outside 1..10000000");
  }
  RETURN_IF_ERROR(Range("limits.max_streams", limits.max_streams, 1, 100000));
  RETURN_IF_ERROR(Range("audit.archive_interval_s", audit.archive_interval_s, 1, 86400));
  if (audit.archive_dir.empty()) {
    return absl::InvalidArgumentError("config audit.archive_dir: required");
  }
  RETURN_IF_ERROR(
      Range("recognition.result_retention_days", recognition.result_retention_days, 0, 36500));
  RETURN_IF_ERROR(Range("recognition.max_result_kb", recognition.max_result_kb, 16, 16384));
  RETURN_IF_ERROR(Range("recognition.max_waveform_kb", recognition.max_waveform_kb, 1, 16384));
  for (auto [key, v] : {std::pair<const char*, int64_t>{"referral.emergency_deadline_s",
                                                        referral.emergency_deadline_s},
                        {"referral.urgent_deadline_s", referral.urgent_deadline_s},
                        {"referral.routine_deadline_s", referral.routine_deadline_s}}) {
    if (v < 1 || v > 365LL * 86400) {
      return absl::InvalidArgumentError(
          absl::StrCat("config ", key, ": ", v, " is outside 1..31536000"));
    }
  }
  std::vector<std::pair<std::string, const PriorityDeadlineOption*>> consult_deadlines = {
      {"consult.accept", &consult.accept}, {"consult.report", &consult.report}};
  for (const auto& [service, d] : consult.report_by_service) {
    consult_deadlines.push_back({"consult.report." + service, &d});
  }
  for (const auto& [table, d] : consult_deadlines) {
    for (auto [key, v] : {std::pair<const char*, int64_t>{"emergency_s", d->emergency_s},
                          {"urgent_s", d->urgent_s},
                          {"routine_s", d->routine_s}}) {
      if (v < 1 || v > 365LL * 86400) {
        return absl::InvalidArgumentError(
            absl::StrCat("config ", table, ".", key, ": ", v, " is outside 1..31536000"));
      }
    }
  }
  if (log.format != "text" && log.format != "json") {
    return absl::InvalidArgumentError("config log.format: text or json");
  }
  return absl::OkStatus();
}

}  // namespace refbroker::config

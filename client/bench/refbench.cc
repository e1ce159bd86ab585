// refbench: refbroker's load generator and benchmark. In one run it measures the machine's
// limits (the disk's write + fdatasync rate in the broker's data directory; a no-op gRPC server
// with the same proto and the same mutual TLS) and the broker driven the same way, and prints
// every result as a ratio to its limit, with the medians of --runs runs. Every run ends with the
// loss check: each acknowledged submission delivered to the subscribed hospital (lost=0).
// Exit 1 when anything acknowledged was lost or a run could not be made.
//
//   refbench --broker 127.0.0.1:7443 --broker-pid 1234 --data-dir /var/lib/refbroker
//            --certs certs/dev --registry deploy/registry.toml --seconds 10 --runs 3

#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "broker/auth/registry.h"
#include "client/bench/disk_probe.h"
#include "client/bench/idle_subscribers.h"
#include "client/bench/load.h"
#include "client/bench/noop_server.h"

namespace refbench {
namespace {

struct ProcessSample {
  double cpu_seconds = 0;  // user + system
  double peak_rss_mib = 0;
  double rss_mib = 0;
};

// The broker's CPU time and memory, from /proc (zeros when there is no such process).
ProcessSample SampleProcess(int pid) {
  ProcessSample s;
  if (pid <= 0) return s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(text.substr(close + 2));
    std::string f;
    double utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is the state
      if (i == 14) utime = std::stod(f);
      if (i == 15) stime = std::stod(f);
    }
    s.cpu_seconds = (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    auto kib = [&line]() { return std::stod(line.substr(line.find(':') + 1)) / 1024.0; };
    if (line.rfind("VmHWM:", 0) == 0) s.peak_rss_mib = kib();
    if (line.rfind("VmRSS:", 0) == 0) s.rss_mib = kib();
  }
  return s;
}

std::string Machine() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  double mem_gib = static_cast<double>(sysconf(_SC_PHYS_PAGES)) *
                   static_cast<double>(sysconf(_SC_PAGE_SIZE)) / (1024.0 * 1024 * 1024);
  utsname u{};
  uname(&u);
  char out[512];
  std::snprintf(out, sizeof out, "%s, %ld cores, %.1f GiB, Linux %s", model.c_str(),
                sysconf(_SC_NPROCESSORS_ONLN), mem_gib, u.release);
  return out;
}

// One measured figure of every run, and its median.
struct Figures {
  std::map<std::string, std::vector<double>> values;
  void Add(const std::string& name, double v) { values[name].push_back(v); }
  double Med(const std::string& name) const {
    auto it = values.find(name);
    return it == values.end() ? 0 : Median(it->second);
  }
};

void PrintRun(const char* target, Mode mode, const LoadResult& r, double cpu_us_per_msg) {
  std::printf("  %-6s %-10s %8zu acked %9.0f/s  submit p50 %7.2f p99 %7.2f p99.9 %7.2f ms", target,
              ModeName(mode), r.acked, r.per_second, r.submit.p50, r.submit.p99, r.submit.p999);
  if (r.delivered > 0 || r.lost > 0) {
    std::printf("  delivery p50 %7.2f p99 %7.2f ms, %.0f/s  lost=%zu", r.delivery.p50,
                r.delivery.p99, r.delivered_per_second, r.lost);
  }
  if (cpu_us_per_msg > 0) std::printf("  broker CPU %.0f µs/msg", cpu_us_per_msg);
  if (r.refused > 0) std::printf("  refused %zu (first: %s)", r.refused, r.first_refusal.c_str());
  std::printf("\n");
  std::fflush(stdout);
}

struct BacklogFigures {
  double before_per_second = 0;
  double with_per_second = 0;
  double fill_per_second = 0;
  double rss_mib = 0;
  size_t filled = 0;
  size_t queued = 0;  // acknowledged by the broker in this phase, all undelivered
};

// Dirty and under-writeback page cache, MiB (/proc/meminfo): what the kernel still has to
// write of what was written before.
double UnwrittenMiB() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kib = 0, total = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "Dirty:" || key == "Writeback:") total += kib;
  }
  return total / 1024;
}

// Waits until the writes of what ran before have reached the disk (at most 60 s), then 2 s
// more: a window measures the store in its state, not the tail of the previous phase's writes
// (the fill writes gigabytes in minutes). Prints what it waited for.
void Settle(const std::string& before_what) {
  auto start = std::chrono::steady_clock::now();
  double at_start = UnwrittenMiB();
  while (UnwrittenMiB() > 64 &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  std::printf(
      "  (settled before %s: %.1f s, %.0f MiB unwritten at the start)\n", before_what.c_str(),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), at_start);
}

bool MeasureBacklog(const LoadOptions& base, const std::string& broker, int broker_pid,
                    size_t backlog, const std::string& tag, BacklogFigures& out) {
  LoadOptions o = base;
  o.target = broker;
  o.subscribe = false;
  auto run = [&](Mode mode, const std::string& name) {
    o.mode = mode;
    o.run_tag = tag + "-backlog-" + name;
    LoadResult r = RunLoad(o);
    ProcessSample s = SampleProcess(broker_pid);
    PrintRun("broker", mode, r, 0);
    std::printf("  (%s; broker resident memory %.1f MiB)\n", name.c_str(), s.rss_mib);
    out.queued += r.acked;
    if (!r.error.empty() || r.refused > 0) {
      std::cerr << "refbench: backlog " << name << ": "
                << (r.error.empty() ? r.first_refusal : r.error) << "\n";
    }
    return r;
  };
  std::printf("backlog: %zu referrals queued for the hospital, nobody consuming them\n", backlog);
  Settle("the window before");
  LoadResult before = run(Mode::kConcurrent, "before");
  o.max_submits = backlog;
  o.seconds = 3600 * 24;
  LoadResult fill = run(Mode::kStream, "fill");
  o.max_submits = 0;
  o.seconds = base.seconds;
  Settle("the window with the backlog");
  LoadResult with = run(Mode::kConcurrent, "with the backlog");
  out.before_per_second = before.per_second;
  out.with_per_second = with.per_second;
  out.fill_per_second = fill.per_second;
  out.filled = fill.acked;
  out.rss_mib = SampleProcess(broker_pid).rss_mib;
  return before.error.empty() && fill.error.empty() && with.error.empty() &&
         before.refused + fill.refused + with.refused == 0;
}

}  // namespace
}  // namespace refbench

int main(int argc, char** argv) {
  using namespace refbench;
  CLI::App app{"refbench — refbroker's benchmark, every figure as a ratio to the machine's limit"};
  std::string broker, certs = "certs/dev", registry_path = "deploy/registry.toml", data_dir;
  int broker_pid = 0, runs = 3, window = 64, callers = 64, payload = 2048;
  double seconds = 10, disk_seconds = 3;
  bool no_noop = false;
  bool no_subscriber = false;
  int idle_subscribers = 0;
  size_t backlog = 0;
  std::vector<std::string> mode_names = {"stream", "unary", "concurrent"};
  app.add_option("--broker", broker, "the broker's host:port")->required();
  app.add_option("--broker-pid", broker_pid, "the broker's process id (CPU time and memory)");
  app.add_option("--data-dir", data_dir,
                 "the broker's data directory (where the disk's own fdatasync rate is measured)")
      ->required();
  app.add_option("--certs", certs, "ca.crt, broker.crt/.key and <principal>.crt/.key");
  app.add_option("--registry", registry_path, "the alliance (its clinics send, its lead receives)");
  app.add_option("--seconds", seconds, "seconds of load per mode and target")
      ->check(CLI::Range(0.2, 3600.0));
  app.add_option("--disk-seconds", disk_seconds, "seconds of the disk probe per run");
  app.add_option("--runs", runs, "runs; the table shows their medians")->check(CLI::Range(1, 99));
  app.add_option("--window", window, "stream mode: unanswered submits per clinic stream")
      ->check(CLI::Range(1, 256));
  app.add_option("--callers", callers, "concurrent mode: callers")->check(CLI::Range(1, 1024));
  app.add_option("--payload", payload, "bytes per referral, about")->check(CLI::Range(256, 65536));
  app.add_option("--modes", mode_names, "stream, unary, concurrent")->delimiter(',');
  app.add_option("--idle-subscribers", idle_subscribers,
                 "then, with this many idle Subscribe streams open, measure memory per stream "
                 "and the unary mode's delivery latency again")
      ->check(CLI::Range(0, 100000));
  app.add_option("--backlog", backlog,
                 "at the end: the 64-caller submit rate, then this many referrals queued with "
                 "nobody consuming them, then the same rate again and the broker's memory")
      ->check(CLI::Range(0, 100000000));
  app.add_flag("--no-subscriber", no_subscriber,
               "nobody subscribes during the modes: what submitting alone costs, without the "
               "delivery path's writes (no loss check: nothing is delivered)");
  app.add_flag(
      "--no-noop", no_noop,
      "skip the no-op server (no gRPC limits: no stream ratio, no unary or 64-caller ceiling)");
  CLI11_PARSE(app, argc, argv);

  std::vector<Mode> modes;
  for (const auto& m : mode_names) {
    if (m == "stream")
      modes.push_back(Mode::kStream);
    else if (m == "unary")
      modes.push_back(Mode::kUnary);
    else if (m == "concurrent")
      modes.push_back(Mode::kConcurrent);
    else {
      std::cerr << "refbench: --modes: unknown mode '" << m << "'\n";
      return 2;
    }
  }
  auto registry = refbroker::auth::Registry::LoadFile(registry_path);
  if (!registry.ok()) {
    std::cerr << "refbench: " << registry.status().message() << "\n";
    return 2;
  }
  const auto& alliance = (*registry)->alliances().front();
  LoadOptions base;
  base.certs = certs;
  base.seconds = seconds;
  base.window = window;
  base.callers = callers;
  base.payload_bytes = payload;
  for (const auto& p : (*registry)->principals()) {
    if (p.alliance != alliance.id) continue;
    if (p.role == refbroker::auth::Role::kClinic) base.clinics.push_back({p.id, p.cert});
    if (p.id == alliance.default_receiver) base.receiver = {p.id, p.cert};
  }
  std::unique_ptr<NoopServer> noop;
  if (!no_noop) {
    auto started = NoopServer::Start(certs);
    if (!started.ok()) {
      std::cerr << "refbench: " << started.status().message() << "\n";
      return 2;
    }
    noop = std::move(*started);
  }

  std::printf("refbench: %s\n", Machine().c_str());
  std::printf("  %zu clinics of %s send ~%d-byte referrals to %s; %.0f s per mode; %d run(s)\n",
              base.clinics.size(), alliance.name.c_str(), payload, base.receiver.code.c_str(),
              seconds, runs);
  Figures fig;
  bool failed = false;
  size_t lost_total = 0;
  std::string tag = std::to_string(getpid()) + "-" +
                    std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  for (int run = 1; run <= runs; ++run) {
    std::printf("run %d\n", run);
    auto disk = ProbeDisk(data_dir, disk_seconds);
    if (!disk.ok()) {
      std::cerr << "refbench: " << disk.status().message() << "\n";
      return 2;
    }
    std::printf("  disk   write+fdatasync 4 KiB %8.0f/s  p50 %7.2f p99 %7.2f ms\n",
                disk->syncs_per_second, disk->latency.p50, disk->latency.p99);
    fig.Add("disk/s", disk->syncs_per_second);
    fig.Add("disk p99", disk->latency.p99);
    for (Mode mode : modes) {
      std::string m = ModeName(mode);
      LoadOptions o = base;
      o.mode = mode;
      o.run_tag = tag + "-" + std::to_string(run) + "-" + m;
      if (noop) {
        o.target = noop->address();
        o.subscribe = false;
        LoadResult r = RunLoad(o);
        if (!r.error.empty()) {
          std::cerr << "refbench: no-op " << m << ": " << r.error << "\n";
          failed = true;
        }
        PrintRun("no-op", mode, r, 0);
        fig.Add("noop " + m + "/s", r.per_second);
        if (mode == Mode::kStream && !no_subscriber) {
          // The same pipelined load with the hospital subscribed, each submission relayed to
          // it and acked, nothing stored: the end-to-end path's gRPC, TLS and protobuf alone.
          LoadOptions relayed = o;
          relayed.subscribe = true;
          relayed.run_tag = o.run_tag + "-relay";
          noop->set_relay(true);
          double cpu_before = SampleProcess(getpid()).cpu_seconds;
          LoadResult rr = RunLoad(relayed);
          double cpu = SampleProcess(getpid()).cpu_seconds - cpu_before;
          noop->set_relay(false);
          if (!rr.error.empty() || rr.lost > 0) {
            std::cerr << "refbench: no-op relay: " << (rr.error.empty() ? "lost some" : rr.error)
                      << "\n";
            failed = true;
          }
          PrintRun("relay", mode, rr, 0);
          // End to end: the relay answers before it delivers, so its rate is the deliveries'.
          fig.Add("relay stream/s", std::min(rr.per_second, rr.delivered_per_second));
          fig.Add("relay cpu", rr.acked > 0 ? cpu * 1e6 / static_cast<double>(rr.acked) : 0);
        }
      }
      o.target = broker;
      o.subscribe = !no_subscriber;
      ProcessSample before = SampleProcess(broker_pid);
      double self_before = SampleProcess(getpid()).cpu_seconds;
      LoadResult r = RunLoad(o);
      ProcessSample after = SampleProcess(broker_pid);
      double self_cpu = SampleProcess(getpid()).cpu_seconds - self_before;
      if (!r.error.empty()) {
        std::cerr << "refbench: broker " << m << ": " << r.error << "\n";
        failed = true;
      }
      double cpu_us = r.acked > 0 ? (after.cpu_seconds - before.cpu_seconds) * 1e6 /
                                        static_cast<double>(r.acked)
                                  : 0;
      PrintRun("broker", mode, r, cpu_us);
      lost_total += r.lost;
      fig.Add(m + "/s", r.per_second);
      fig.Add(m + " p50", r.submit.p50);
      fig.Add(m + " p99", r.submit.p99);
      fig.Add(m + " p99.9", r.submit.p999);
      fig.Add(m + " delivery p50", r.delivery.p50);
      fig.Add(m + " delivery p99", r.delivery.p99);
      fig.Add(m + " cpu", cpu_us);
      fig.Add(m + " client cpu", r.acked > 0 ? self_cpu * 1e6 / static_cast<double>(r.acked) : 0);
      fig.Add("peak rss", after.peak_rss_mib);
    }
    if (idle_subscribers > 0) {
      // The same unary load, without and then with the idle streams open.
      LoadOptions o = base;
      o.mode = Mode::kUnary;
      o.target = broker;
      o.run_tag = tag + "-" + std::to_string(run) + "-idle-before";
      LoadResult without = RunLoad(o);
      PrintRun("broker", Mode::kUnary, without, 0);
      auto conn = refclient::Connection::Create(
          refclient::CertDirOptions({broker}, certs, base.receiver.cert));
      if (!conn.ok()) {
        std::cerr << "refbench: " << conn.status().message() << "\n";
        return 2;
      }
      ProcessSample before = SampleProcess(broker_pid);
      {
        IdleSubscribers idle(**conn, base.receiver.code, refbroker::v1::REFERRAL_UPDATES,
                             "idle-" + tag + "-" + std::to_string(run), idle_subscribers);
        std::this_thread::sleep_for(std::chrono::seconds(2));
        ProcessSample opened = SampleProcess(broker_pid);
        o.run_tag = tag + "-" + std::to_string(run) + "-idle-with";
        LoadResult with = RunLoad(o);
        if (idle.failed() > 0) {
          std::cerr << "refbench: " << idle.failed()
                    << " idle subscriber(s) ended: " << idle.first_error().message() << "\n";
          failed = true;
        }
        std::printf("  %d idle subscribers open: broker resident memory %.1f -> %.1f MiB\n",
                    idle_subscribers, before.rss_mib, opened.rss_mib);
        PrintRun("broker", Mode::kUnary, with, 0);
        lost_total += without.lost + with.lost;
        fig.Add("idle kib", (opened.rss_mib - before.rss_mib) * 1024.0 / idle_subscribers);
        fig.Add("idle delivery p50 without", without.delivery.p50);
        fig.Add("idle delivery p50 with", with.delivery.p50);
        fig.Add("idle delivery p99 without", without.delivery.p99);
        fig.Add("idle delivery p99 with", with.delivery.p99);
      }
    }
  }

  // The backlog: the same 64-caller load on the store as it is, then with `backlog` referrals
  // queued for the hospital and nobody consuming them (its group stays behind), and the
  // broker's memory holding them. Measured once, after the runs.
  BacklogFigures bl;
  if (backlog > 0) {
    if (!MeasureBacklog(base, broker, broker_pid, backlog, tag, bl)) failed = true;
  }

  // The table: medians, and each target as a ratio to its limit measured in the same runs.
  std::printf("\nmedians of %d run(s) — %s\n", runs, Machine().c_str());
  std::printf("  %-44s %12s %12s %8s %s\n", "measure", "broker", "limit", "ratio", "target");
  auto row = [&](const char* what, double v, double limit, const char* target, bool met) {
    std::printf("  %-44s %12.1f %12.1f %8.2f %s %s\n", what, v, limit, limit > 0 ? v / limit : 0.0,
                target, limit > 0 ? (met ? "met" : "MISSED") : "");
  };
  double disk = fig.Med("disk/s"), disk_p99 = fig.Med("disk p99");
  for (Mode mode : modes) {
    std::string m = ModeName(mode);
    double v = fig.Med(m + "/s");
    if (mode == Mode::kStream) {
      double limit = fig.Med("noop stream/s");
      row("stream: durable submits/s vs no-op stream/s", v, limit, "≥ 0.3", v >= 0.3 * limit);
      // What the end-to-end path can reach at all with nothing stored: each submission relayed
      // to the subscribed hospital and acked by it (three messages a referral, not one).
      double relay = fig.Med("relay stream/s");
      if (relay > 0) {
        std::printf(
            "  %-44s %12.1f %12.1f %8.2f (the target's 0.3 of the no-op stream is %.2f of it)\n",
            "stream: durable submits/s vs no-op relay/s", v, relay, v / relay, 0.3 * limit / relay);
        std::printf("  %-44s relay and its clients %.0f µs/msg (one process)\n", "",
                    fig.Med("relay cpu"));
      }
    } else if (mode == Mode::kUnary) {
      row("unary: submits/s vs disk fdatasync/s", v, disk, "≥ 0.8", v >= 0.8 * disk);
      double p99 = fig.Med(m + " p99");
      row("unary: p99 ms vs disk fdatasync p99 ms", p99, disk_p99, "≤ 3", p99 <= 3 * disk_p99);
      // What one caller can reach at all: a gRPC round trip and an fdatasync, one after the
      // other, each at the rate measured in the same runs.
      double noop_unary = fig.Med("noop unary/s");
      if (noop_unary > 0 && disk > 0) {
        double ceiling = 1.0 / (1.0 / noop_unary + 1.0 / disk);
        std::printf("  %-44s %12.1f %12.1f %8.2f (the target's 0.8 of fdatasync/s is %.2f of it)\n",
                    "unary: submits/s vs round trip + fdatasync", v, ceiling, v / ceiling,
                    0.8 * disk / ceiling);
      }
    } else {
      row("64 callers: submits/s vs disk fdatasync/s", v, disk, "≥ 5", v >= 5 * disk);
      // What 64 callers can reach at all on this machine: the same calls answered by the no-op
      // server, with nothing stored (callers and server share the cores, as with the broker).
      double noop_concurrent = fig.Med("noop concurrent/s");
      if (noop_concurrent > 0 && disk > 0) {
        std::printf("  %-44s %12.1f %12.1f %8.2f (the target's 5 × fdatasync/s is %.2f of it)\n",
                    "64 callers: submits/s vs no-op 64 callers/s", v, noop_concurrent,
                    v / noop_concurrent, 5 * disk / noop_concurrent);
      }
    }
  }
  for (Mode mode : modes) {
    std::string m = ModeName(mode);
    std::printf(
        "  %-10s submit p50 %.2f p99 %.2f p99.9 %.2f ms; delivery p50 %.2f p99 %.2f ms; "
        "broker CPU %.0f µs/msg, refbench's own %.0f µs/msg\n",
        m.c_str(), fig.Med(m + " p50"), fig.Med(m + " p99"), fig.Med(m + " p99.9"),
        fig.Med(m + " delivery p50"), fig.Med(m + " delivery p99"), fig.Med(m + " cpu"),
        fig.Med(m + " client cpu"));
  }
  if (broker_pid > 0) std::printf("  broker peak resident memory %.1f MiB\n", fig.Med("peak rss"));
  if (idle_subscribers > 0) {
    double p50_without = fig.Med("idle delivery p50 without"),
           p50_with = fig.Med("idle delivery p50 with");
    std::printf(
        "  %d idle subscribers: %.1f KiB of broker memory each; an active subscriber's delivery "
        "p50 %.2f ms with them vs %.2f ms without (ratio %.2f), p99 %.2f vs %.2f ms\n",
        idle_subscribers, fig.Med("idle kib"), p50_with, p50_without,
        p50_without > 0 ? p50_with / p50_without : 0.0, fig.Med("idle delivery p99 with"),
        fig.Med("idle delivery p99 without"));
  }
  if (backlog > 0) {
    row("backlog: 64 callers/s with it vs before", bl.with_per_second, bl.before_per_second,
        "≥ 0.9", bl.with_per_second >= 0.9 * bl.before_per_second);
    std::printf("  %-44s %12.1f %12.1f %8s %s %s\n", "backlog: broker resident MiB holding it",
                bl.rss_mib, 256.0, "", "< 256 MiB", bl.rss_mib < 256 ? "met" : "MISSED");
    std::printf("backlog queued=%zu (%zu filled at %.0f/s)\n", bl.queued, bl.filled,
                bl.fill_per_second);
  }
  std::printf("lost=%zu\n", lost_total);
  return failed || lost_total > 0 ? 1 : 0;
}

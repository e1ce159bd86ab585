// recognition_bench: how the mutual-recognition query and result publishing behave as results
// accumulate. Loads N result records for N/10 patients through the real publish path
// (ResultWorkflow over SqliteStore, group commit from concurrent publishers), then measures
// the recognition query (3 items) for random patients, and reports:
//   - publish rate on an empty store vs with N stored (ratio; target ≥ 0.9), each the median
//     of three windows of one workload: 20 results per patient in a window, for patients with
//     earlier results of the same items, so the repeat-without-reason check has work in both
//   - the full store's rate when every record is about a different patient (the worst case
//     for an index by patient; no target)
//   - query latency p50 / p99 (target p99 < 2 ms)
//   - store size on disk
//   - per phase, where the time per record went (medians of the windows): the CPU of the single
//     writer, of the checkpointer and of every other thread (the publishers), from /proc; the
//     writer's time ready to run but waiting for a core (schedstat); the wall time of COMMIT's
//     WAL write and fdatasync; the writer's page reads (read system calls) and how the commits
//     went (records per WAL sync, WAL frames per record). The rates of one phase vary by ±15%
//     between runs on this machine.
//   - how much of the store's file the OS page cache held after the windows (mincore)
//   - the same workload through the real broker: the refbroker binary on the full store, and on
//     fresh empty stores, each on a loopback port with mTLS (certificates made for the run),
//     `threads` callers publishing with PublishResult; its rate on both (ratio; the publish
//     rate a hospital sees), the broker's CPU and its writer's per publish, call latency
// The empty stores' windows alternate with the full store's, after the load.
// With --postgres CONNINFO (or --postgres-test-cluster: the tests' throw-away cluster) every
// store is a schema of its own in that PostgreSQL database, partitioned by the sample
// registry's alliances as the broker's is, dropped at the end; the SQLite measures (WAL, page
// reads, checkpointer, page cache) give way to the database server's CPU per record (every
// `postgres` process of this machine, reaped ones included) and the schema's size.
//   recognition_bench [--records N] [--threads T] [--queries Q] [--dir DIR] [--existing]
//                     [--no-audit] [--no-broker] [--pause-ms MS]
//                     [--postgres CONNINFO | --postgres-test-cluster]

#include <libpq-fe.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "broker/auth/registry.h"
#include "broker/broker_server.h"
#include "broker/domain/identifiers.h"
#include "broker/domain/result_workflow.h"
#include "broker/recognition/catalogue.h"
#include "broker/storage/audit_scope.h"
#include "broker/storage/internal/wal_write_buffer.h"
#include "broker/storage/postgres_store.h"
#include "broker/storage/sqlite_store.h"
#include "client/refclient/connection.h"
#include "client/refclient/result_client.h"
#include "google/protobuf/util/time_util.h"
#include "tests/support/broker_process.h"
#include "tests/support/page_cache.h"
#include "tests/support/pg_cluster.h"

namespace {

namespace v1 = refbroker::v1;
using google::protobuf::util::TimeUtil;
using SteadyClock = std::chrono::steady_clock;

const char* kItems[] = {"LAB-GLU", "LAB-HBA1C", "LAB-CBC", "LAB-CR", "ECG-12"};
const char* kPerformers[] = {"12411723MB0A10014N", "12411723417580001B", "124117234175811018",
                             "12411723417581102B"};

std::string ResidentId(uint64_t patient) {
  char first17[18];
  std::snprintf(first17, sizeof first17, "411723%04d%02d%02d%03d",
                static_cast<int>(1940 + patient % 80), static_cast<int>(1 + patient / 80 % 12),
                static_cast<int>(1 + patient / 960 % 28), static_cast<int>(patient / 26880 % 1000));
  std::string id(first17, 17);
  id.push_back(refbroker::domain::ResidentIdCheckChar(id));
  return id;
}

// The recognition query the benchmark times: three items of one patient.
v1::RecognizeRequest QueryFor(uint64_t patient) {
  v1::RecognizeRequest req;
  req.mutable_patient()->set_type(v1::RESIDENT_ID);
  req.mutable_patient()->set_value(ResidentId(patient));
  req.add_item_codes("LAB-GLU");
  req.add_item_codes("LAB-HBA1C");
  req.add_item_codes("ECG-12");
  return req;
}

// The median of one measure over a phase's windows (in-process or through the broker), and the
// list of their rates.
template <typename W>
double Median(const std::vector<W>& windows, double W::*field) {
  std::vector<double> v;
  for (const W& w : windows) v.push_back(w.*field);
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
// The value at fraction p (0.5: the median) of sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  return sorted[static_cast<size_t>(p * static_cast<double>(sorted.size() - 1))];
}
template <typename W>
std::string Rates(const std::vector<W>& windows) {
  std::string out;
  for (const W& w : windows) {
    out += (out.empty() ? "" : " ") + std::to_string(static_cast<int>(w.rate));
  }
  return out;
}

// Which patient record n is about.
using PatientOf = std::function<uint64_t(uint64_t n)>;

// The prefix of the records' client request ids. An --existing run adds its start time, so that
// runs on one store with the same --records (the same patients) publish new records rather than
// replay earlier ones.
std::string request_id_prefix = "bench-";

v1::ResultRecord Record(uint64_t n, uint64_t patient, std::mt19937_64& rng) {
  v1::ResultRecord r;
  r.set_client_request_id(request_id_prefix + std::to_string(n));
  const char* item = kItems[rng() % 5];
  r.set_kind(item[0] == 'E' ? v1::ECG : v1::LAB);
  auto* id = r.mutable_patient()->add_identifiers();
  id->set_type(v1::RESIDENT_ID);
  id->set_value(ResidentId(patient));
  r.mutable_patient()->set_name("测试");
  r.set_performing_institution(kPerformers[rng() % 4]);
  r.set_item_code(item);
  *r.mutable_performed_at() =
      TimeUtil::GetCurrentTime() -
      TimeUtil::SecondsToDuration(static_cast<int64_t>(rng() % (30 * 86400)));
  if (r.kind() == v1::LAB) {
    auto* v = r.add_lab_values();
    v->set_analyte(item);
    v->set_value(std::to_string(rng() % 100 / 10.0));
    v->set_unit("mmol/L");
  } else {
    auto* m = r.mutable_ecg()->add_measurements();
    m->set_name("HR");
    m->set_value(60 + rng() % 40);
  }
  return r;
}

// What this process's threads named `name` (the stores name theirs rb-writer and rb-checkpoint)
// have had so far, from /proc/self/task/*/schedstat: seconds on a core, and seconds ready to run
// but waiting on a run queue while another thread had the core.
struct SchedSeconds {
  double cpu = 0;
  double queued = 0;
  double reads = 0;  // read system calls (/proc/self/task/*/io syscr): SQLite's page reads
};
SchedSeconds ThreadSched(const std::string& name, const std::string& proc = "/proc/self") {
  SchedSeconds total;
  for (const auto& task : std::filesystem::directory_iterator(proc + "/task")) {
    std::ifstream comm_file(task.path() / "comm");
    std::string comm;
    if (!std::getline(comm_file, comm) || comm != name) continue;
    std::ifstream sched(task.path() / "schedstat");
    unsigned long long run_ns = 0, wait_ns = 0;
    if (sched >> run_ns >> wait_ns) {
      total.cpu += static_cast<double>(run_ns) / 1e9;
      total.queued += static_cast<double>(wait_ns) / 1e9;
    }
    std::ifstream io(task.path() / "io");
    std::string key;
    unsigned long long value = 0;
    while (io >> key >> value) {
      if (key == "syscr:") total.reads += static_cast<double>(value);
    }
  }
  return total;
}

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

struct Window {
  double rate = 0;               // records per second
  double writer_us = 0;          // writer thread CPU per record
  double checkpoint_us = 0;      // checkpoint thread CPU per record
  double records_per_sync = 0;   // records per WAL sync (commit)
  double frames_per_record = 0;  // WAL frames written per record
  double others_us = 0;          // every other thread's CPU per record (the publishers')
  double writer_queued_us = 0;   // the writer's time ready but waiting for a core, per record
  double sync_us = 0;            // wall time writing and syncing the WAL at COMMIT, per record
  double writer_reads = 0;       // the writer's read system calls per record (pages it read)
  double server_us = 0;          // PostgreSQL: the database server's CPU per record
};

// PostgreSQL: the CPU seconds of every `postgres` process of this machine so far, the ones
// that ended included (the postmaster's reaped children); 0 when none runs here.
double DatabaseServerCpuSeconds() {
  double total = 0;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream comm_file(e.path() / "comm");
    std::string comm;
    if (!std::getline(comm_file, comm) || comm != "postgres") continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    if (line.rfind(')') == std::string::npos) continue;
    // After the command's closing parenthesis: field 3 (state) on; utime 14, stime 15,
    // cutime 16, cstime 17 (the children's reaped, counted once: in their parent).
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 17 && rest >> field; ++i) {
      if (i >= 14) total += std::stod(field) / tick;
    }
  }
  return total;
}

// --no-audit: the workflow alone, without the audit entry (as this benchmark measured before
// 2026-11-25), to tell the audit's share apart. Set once in main, before any publisher runs.
bool with_audit = true;
// The store's writer thread: SQLite's, or PostgreSQL's (set in main).
std::string writer_thread = "rb-writer";
bool postgres = false;

// Hands records [from, to) to `threads` threads, each record to `publish` (with the thread's
// index) on one of them; returns the seconds until all are done.
double RunPublishers(uint64_t from, uint64_t to, const PatientOf& patient_of, int threads,
                     const std::function<void(int, const v1::ResultRecord&)>& publish) {
  std::atomic<uint64_t> next{from};
  auto start = SteadyClock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(t * 7919 + from);
      for (uint64_t n = next++; n < to; n = next++) publish(t, Record(n, patient_of(n), rng));
    });
  }
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// Publishes records [from, to) from `threads` threads, each as the broker's PublishResult call
// does: inside an audit scope, so that the result and its audit entry commit together.
Window Publish(refbroker::domain::ResultWorkflow& wf, refbroker::storage::Store& store,
               const refbroker::auth::Registry& reg, uint64_t from, uint64_t to,
               const PatientOf& patient_of, int threads) {
  std::atomic<uint64_t> errors{0};
  const auto wal_before = refbroker::storage::internal::GetWalWriteStats();
  const SchedSeconds writer_before = ThreadSched(writer_thread);
  const SchedSeconds checkpoint_before = ThreadSched("rb-checkpoint");
  const double process_before = ProcessCpuSeconds();
  const double server_before = postgres ? DatabaseServerCpuSeconds() : 0;
  double secs = RunPublishers(from, to, patient_of, threads, [&](int, const v1::ResultRecord& r) {
    const refbroker::auth::Principal& who = *reg.Find(r.performing_institution());
    if (!with_audit) {
      if (!wf.Publish(who, r).ok()) errors++;
      return;
    }
    refbroker::storage::AuditRow base;
    base.at = refbroker::SystemClock::Get().Now();
    base.actor = who.id;
    base.alliance = who.alliance;
    base.action = "PublishResult";
    base.peer = "ipv4:127.0.0.1:50000";
    refbroker::storage::AuditScope audit(store, base);
    absl::Status s = wf.Publish(who, r).status();
    if (!audit.Finish(s.code()).ok() || !s.ok()) errors++;
  });
  if (errors > 0) std::fprintf(stderr, "publish errors: %llu\n", (unsigned long long)errors.load());
  const auto wal_after = refbroker::storage::internal::GetWalWriteStats();
  const double n = static_cast<double>(to - from);
  Window w;
  w.rate = n / secs;
  if (postgres) w.server_us = (DatabaseServerCpuSeconds() - server_before) * 1e6 / n;
  const SchedSeconds writer_after = ThreadSched(writer_thread);
  w.writer_us = (writer_after.cpu - writer_before.cpu) * 1e6 / n;
  w.writer_queued_us = (writer_after.queued - writer_before.queued) * 1e6 / n;
  w.writer_reads = (writer_after.reads - writer_before.reads) / n;
  w.checkpoint_us = (ThreadSched("rb-checkpoint").cpu - checkpoint_before.cpu) * 1e6 / n;
  w.others_us = (ProcessCpuSeconds() - process_before) * 1e6 / n - w.writer_us - w.checkpoint_us;
  uint64_t syncs = wal_after.syncs - wal_before.syncs;
  w.records_per_sync = syncs > 0 ? n / static_cast<double>(syncs) : 0;
  w.sync_us = static_cast<double>(wal_after.sync_nanos - wal_before.sync_nanos) / 1e3 / n;
  // SQLite writes a frame as two writes (its header, then the page).
  w.frames_per_record =
      static_cast<double>(wal_after.frame_writes - wal_before.frame_writes) / 2 / n;
  return w;
}

// A window of the same workload through the real broker: the refbroker binary (mTLS, its
// default store settings: fsync before every answer) on a loopback port, `threads` callers each
// making one PublishResult call at a time over the performing institution's own channel. What
// a publishing hospital sees; the store's share of each publish is smaller than in-process.
struct BrokerWindow {
  double rate = 0;                // publishes answered OK per second
  double broker_us = 0;           // the broker process's CPU per publish
  double writer_us = 0;           // its writer thread's CPU per publish
  double server_us = 0;           // PostgreSQL: the database server's CPU per publish
  double p50_ms = 0, p99_ms = 0;  // one call, as the caller waits for it
  uint64_t errors = 0;
};

using Connections = std::map<std::string, std::unique_ptr<refclient::Connection>>;

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

BrokerWindow PublishThroughBroker(const refbroker::testing::BrokerProcess& broker,
                                  const std::string& certs, const refbroker::auth::Registry& reg,
                                  uint64_t from, uint64_t to, const PatientOf& patient_of,
                                  int threads) {
  Connections connections;
  for (const char* code : kPerformers) {
    auto conn = refclient::Connection::Create(
        refclient::CertDirOptions({broker.address()}, certs, reg.Find(code)->cert));
    if (!conn.ok()) {
      std::fprintf(stderr, "connection: %s\n", conn.status().ToString().c_str());
      std::exit(2);
    }
    connections[code] = std::move(*conn);
  }
  const std::string proc = "/proc/" + std::to_string(broker.pid());
  std::atomic<uint64_t> errors{0};
  std::vector<std::vector<double>> latencies(threads);
  const double cpu_before = ProcessCpuSeconds(broker.pid());
  const SchedSeconds writer_before = ThreadSched(writer_thread, proc);
  const double server_before = postgres ? DatabaseServerCpuSeconds() : 0;
  double secs = RunPublishers(from, to, patient_of, threads, [&](int t, const v1::ResultRecord& r) {
    refclient::ResultClient client(*connections.at(r.performing_institution()));
    auto t0 = SteadyClock::now();
    auto out = client.Publish(r);
    latencies[t].push_back(
        std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
    if (!out.ok() && errors++ == 0) {
      std::fprintf(stderr, "publish through the broker: %s\n", out.status().ToString().c_str());
    }
  });
  const double n = static_cast<double>(to - from);
  BrokerWindow w;
  w.errors = errors;
  w.rate = (n - static_cast<double>(errors)) / secs;
  w.broker_us = (ProcessCpuSeconds(broker.pid()) - cpu_before) * 1e6 / n;
  w.writer_us = (ThreadSched(writer_thread, proc).cpu - writer_before.cpu) * 1e6 / n;
  if (postgres) w.server_us = (DatabaseServerCpuSeconds() - server_before) * 1e6 / n;
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  if (!all.empty()) {
    w.p50_ms = Percentile(all, 0.5);
    w.p99_ms = Percentile(all, 0.99);
  }
  return w;
}

// The recognition query (3 items) `queries` times through the broker, one call at a time by
// the county hospital, for random stored patients: each call's latency in ms, sorted. The
// broker writes an audit entry for every look at a patient's records before it answers, so a
// call includes a commit.
std::vector<double> QueryThroughBroker(const refbroker::testing::BrokerProcess& broker,
                                       const std::string& certs,
                                       const refbroker::auth::Registry& reg, uint64_t patients,
                                       int queries, uint64_t seed) {
  auto conn = refclient::Connection::Create(
      refclient::CertDirOptions({broker.address()}, certs, reg.Find("12411723417580001B")->cert));
  if (!conn.ok()) {
    std::fprintf(stderr, "connection: %s\n", conn.status().ToString().c_str());
    std::exit(2);
  }
  refclient::ResultClient client(**conn);
  std::mt19937_64 rng(seed);
  std::vector<double> ms;
  for (int q = 0; q < queries; ++q) {
    v1::RecognizeRequest req = QueryFor(rng() % patients);
    auto t0 = SteadyClock::now();
    auto out = client.Recognize(req);
    ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
    if (!out.ok()) {
      std::fprintf(stderr, "query through the broker: %s\n", out.status().ToString().c_str());
      std::exit(1);
    }
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

// Waits until the broker's background integrity check of its store (its thread rb-integrity)
// has ended: while it runs, its read transaction keeps the WAL from being checkpointed, which
// a window would measure. Returns the seconds waited.
double WaitForIntegrityCheck(pid_t pid) {
  auto start = SteadyClock::now();
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  for (;;) {
    bool running = false;
    for (const auto& task : std::filesystem::directory_iterator(tasks)) {
      std::ifstream comm_file(task.path() / "comm");
      std::string comm;
      if (std::getline(comm_file, comm) && comm == "rb-integrity") running = true;
    }
    if (!running) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// How much of `path` the OS page cache holds, in bytes. On this machine the page cache of an
// idle file shrinks by ~20 MB/s with most of the memory free, so a large store is partly read
// from the disk again.
uint64_t CachedBytes(const std::string& path) {
  long pages = refbroker::testing::ResidentPages(path);
  return pages > 0 ? static_cast<uint64_t>(pages) * sysconf(_SC_PAGESIZE) : 0;
}

uint64_t DirSize(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

// PostgreSQL: the bytes of every table of `schema` (each partition, its indexes and TOAST).
uint64_t SchemaSize(const std::string& conninfo, const std::string& schema) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  const std::string sql =
      "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace "
      "n ON n.oid=c.relnamespace WHERE n.nspname='" +
      schema + "' AND c.relkind IN ('r', 'm')";
  PGresult* r = PQexec(c, sql.c_str());
  uint64_t size = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                      ? std::stoull(PQgetvalue(r, 0, 0))
                      : 0;
  PQclear(r);
  PQfinish(c);
  return size;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"recognition_bench — mutual-recognition query and publish rate at scale"};
  uint64_t records = 1000000;
  int threads = 32;
  int queries = 10000;
  std::string dir;
  app.add_option("--records", records, "result records to load (patients = records / 10)");
  app.add_option("--threads", threads, "concurrent publishers");
  app.add_option("--queries", queries, "recognition queries to time");
  app.add_option("--dir", dir, "data directory (default: a temporary one, removed after)");
  bool no_audit = false;
  app.add_flag("--no-audit", no_audit,
               "publish without the audit entry the broker writes with each result (the "
               "workflow alone), to tell the audit's share apart");
  bool existing = false;
  app.add_flag("--existing", existing,
               "the store in --dir was loaded with --records records: only publish more to it "
               "(the full-store rate, once the store's integrity check is done) and query; for "
               "profiling one phase");
  bool no_broker = false;
  app.add_flag("--no-broker", no_broker,
               "skip the windows through the real broker (refbroker and mTLS callers)");
  int pause_ms = 2000;
  app.add_option("--pause-ms", pause_ms,
                 "pause before each measured window, for the previous one's checkpoint to end");
  std::string conninfo;
  auto* pg_option = app.add_option(
      "--postgres", conninfo,
      "the stores in this PostgreSQL database (libpq connection string), a schema each");
  bool pg_test_cluster = false;
  app.add_flag("--postgres-test-cluster", pg_test_cluster,
               "the stores in the tests' throw-away PostgreSQL cluster (REFBROKER_PG_STATE)")
      ->excludes(pg_option);
  CLI11_PARSE(app, argc, argv);
  with_audit = !no_audit;
  if (pg_test_cluster) {
    conninfo = refbroker::testing::TestClusterConninfo();
    if (conninfo.empty()) {
      std::fprintf(stderr, "no test cluster (%s)\n", REFBROKER_PG_STATE);
      return 2;
    }
  }
  postgres = !conninfo.empty();
  if (postgres && existing) {
    std::fprintf(stderr, "--existing is for a SQLite store\n");
    return 2;
  }
  if (postgres) writer_thread = "rb-pg-writer";
  if (existing) request_id_prefix = "bench-" + std::to_string(std::time(nullptr)) + "-";
  spdlog::set_level(spdlog::level::warn);  // one info line per record would be the benchmark
  bool temporary = dir.empty();
  if (temporary) {
    dir =
        (std::filesystem::temp_directory_path() / ("recognition-bench-" + std::to_string(getpid())))
            .string();
  }
  std::filesystem::create_directories(dir);
  auto reg = refbroker::auth::Registry::LoadFile(std::string(REFBROKER_SOURCE_DIR) +
                                                 "/deploy/registry.toml");
  auto cat = refbroker::recognition::Catalogue::LoadFile(std::string(REFBROKER_SOURCE_DIR) +
                                                         "/deploy/recognition.toml");
  if (!reg.ok() || !cat.ok()) {
    std::fprintf(stderr, "set-up failed\n");
    return 2;
  }
  // A store by name: the full one ("full") or an empty window's ("empty-K"). SQLite: a file in
  // `dir` (the full one's is dir/store.db, the path --existing opens); PostgreSQL: a schema of
  // its own, partitioned by the registry's alliances as the broker's, dropped by drop_store.
  const refbroker::auth::Registry* registry = reg->get();
  auto sqlite_path = [&](const std::string& name) {
    return name == "full" ? dir + "/store.db" : dir + "/" + name + "/store.db";
  };
  auto schema_of = [&](const std::string& name) {
    std::string schema = "recbench_" + std::to_string(getpid()) + "_" + name;
    std::replace(schema.begin(), schema.end(), '-', '_');
    return schema;
  };
  auto open_store =
      [&](const std::string& name) -> absl::StatusOr<std::unique_ptr<refbroker::storage::Store>> {
    if (postgres) {
      refbroker::storage::PostgresOptions po;
      po.conninfo = conninfo;
      po.schema = schema_of(name);
      refbroker::PartitionByAlliance(registry, po);
      (void)refbroker::storage::PostgresStore::DropSchema(conninfo, po.schema);
      auto opened = refbroker::storage::PostgresStore::Open(po);
      if (!opened.ok()) return opened.status();
      return std::unique_ptr<refbroker::storage::Store>(std::move(*opened));
    }
    std::filesystem::create_directories(std::filesystem::path(sqlite_path(name)).parent_path());
    refbroker::storage::SqliteOptions so;
    so.path = sqlite_path(name);
    auto opened = refbroker::storage::SqliteStore::Open(so);
    if (!opened.ok()) return opened.status();
    return std::unique_ptr<refbroker::storage::Store>(std::move(*opened));
  };
  auto drop_store = [&](const std::string& name) {
    if (postgres) {
      (void)refbroker::storage::PostgresStore::DropSchema(conninfo, schema_of(name));
    } else if (name != "full") {
      std::filesystem::remove_all(std::filesystem::path(sqlite_path(name)).parent_path());
    }
  };
  auto store = open_store("full");
  if (!store.ok()) {
    std::fprintf(stderr, "store: %s\n", store.status().ToString().c_str());
    return 2;
  }
  refbroker::recognition::CatalogueHolder holder(
      std::shared_ptr<const refbroker::recognition::Catalogue>(std::move(*cat)));
  refbroker::domain::ResultWorkflow wf(**store, **reg, holder, refbroker::SystemClock::Get(), {},
                                       [](const std::string&) {});
  uint64_t patients = std::max<uint64_t>(1, records / 10);
  uint64_t probe = std::min<uint64_t>(50000, std::max<uint64_t>(records / 20, 1000));

  // Rates are medians of three windows: on three fresh empty stores, and of the last windows of
  // the load into the full one (single windows varied by ±20% on this machine). The empty
  // stores' windows alternate with the full store's, each after a pause in which the previous
  // window's checkpoint ends, so that both sizes are measured in the same minutes of a machine
  // whose speed drifts (the ratio of runs that measured the empty stores first, before the
  // load, moved between 0.60 and 0.72 at 1M records).
  //
  // The ratio compares one workload on both stores: a window's `probe` records go to probe/20
  // patients, 20 each, interleaved (results arrive per patient visit, a panel of items), so the
  // pages a window touches for a patient are read once and then found in the caches on both
  // stores; on the full store those patients are drawn at random from every stored patient, and
  // each already has earlier results. Between those windows the full store also takes windows
  // in which every record is about a different patient (the load's own pattern): the worst case
  // for a store indexed by patient, reported beside the ratio, without a target.
  constexpr int kWindows = 3;
  const uint64_t visit_patients = std::max<uint64_t>(1, probe / 20);
  std::vector<Window> empty_windows, full_windows, scattered_windows;
  const auto pause = [&] { std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms)); };
  // One window on a fresh empty store (removed after).
  auto empty_window = [&](int k) -> std::optional<Window> {
    const std::string name = "empty-" + std::to_string(k);
    auto empty_store = open_store(name);
    if (!empty_store.ok()) {
      std::fprintf(stderr, "empty store: %s\n", empty_store.status().ToString().c_str());
      return std::nullopt;
    }
    refbroker::domain::ResultWorkflow ewf(
        **empty_store, **reg, holder, refbroker::SystemClock::Get(), {}, [](const std::string&) {});
    pause();
    // Each record has 9.5 earlier results of its patient on average (1.9 of its item) for the
    // repeat check; on the full store ~10 more.
    Window w = Publish(
        ewf, **empty_store, **reg, 0, probe, [&](uint64_t n) { return n % visit_patients; },
        threads);
    empty_store->reset();
    drop_store(name);
    return w;
  };
  if (existing) {
    // The integrity check Open starts reads the whole file and keeps the WAL from being
    // checkpointed: the windows would measure it (a 6 GB store: ~126 commits/s instead of ~429).
    auto wait_start = SteadyClock::now();
    auto* sqlite = dynamic_cast<refbroker::storage::SqliteStore*>(store->get());
    while (!sqlite->IntegrityCheckFinished()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::printf("integrity check of the existing store: %.1f s (before the windows)\n",
                std::chrono::duration<double>(SteadyClock::now() - wait_start).count());
  }
  uint64_t tail = 2 * kWindows * probe;  // a scattered window, then a visits window, 3 times
  uint64_t bulk_end = existing ? records : (records > tail ? records - tail : 0);
  uint64_t end = existing ? records + tail : std::max(records, tail);
  auto load_start = SteadyClock::now();
  const PatientOf scattered = [&](uint64_t n) { return n % patients; };
  if (bulk_end > 0 && !existing) Publish(wf, **store, **reg, 0, bulk_end, scattered, threads);
  std::mt19937_64 pick(7);
  double empty_secs = 0;  // the empty stores' windows, taken out of the load time
  for (uint64_t from = bulk_end; from + 2 * probe <= end; from += 2 * probe) {
    if (!existing) {
      auto empty_start = SteadyClock::now();
      std::optional<Window> w = empty_window(static_cast<int>(empty_windows.size()));
      if (!w) return 2;
      empty_windows.push_back(*w);
      empty_secs += std::chrono::duration<double>(SteadyClock::now() - empty_start).count();
    }
    pause();
    scattered_windows.push_back(
        Publish(wf, **store, **reg, from, from + probe, scattered, threads));
    // Patients with results stored (those of the records before this window), drawn at random.
    const uint64_t stored = std::max<uint64_t>(1, std::min(patients, from));
    std::vector<uint64_t> visit(visit_patients);
    for (auto& p : visit) p = pick() % stored;
    const uint64_t start = from + probe;
    pause();
    full_windows.push_back(Publish(
        wf, **store, **reg, start, start + probe,
        [&](uint64_t n) { return visit[(n - start) % visit.size()]; }, threads));
  }
  double empty_rate = Median(empty_windows, &Window::rate);
  double full_rate = Median(full_windows, &Window::rate);
  double scattered_rate = Median(scattered_windows, &Window::rate);
  double load_secs =
      std::chrono::duration<double>(SteadyClock::now() - load_start).count() - empty_secs;
  const uint64_t cached_after_load = postgres ? 0 : CachedBytes(sqlite_path("full"));

  std::mt19937_64 rng(42);
  std::vector<double> latencies;
  auto* clinic = (*reg)->Find("12411723417580001B");
  for (int q = 0; q < queries; ++q) {
    v1::RecognizeRequest req = QueryFor(rng() % patients);
    auto t0 = SteadyClock::now();
    auto out = wf.Recognize(*clinic, req);
    latencies.push_back(std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count());
    if (!out.ok()) {
      std::fprintf(stderr, "query failed: %s\n", out.status().ToString().c_str());
      return 1;
    }
  }
  std::sort(latencies.begin(), latencies.end());
  uint64_t size = postgres ? SchemaSize(conninfo, schema_of("full")) : DirSize(dir);

  // The same workload through the real broker, its windows alternating in the same way: one
  // broker on the full store for all of them, a broker on a fresh store for each empty window.
  std::vector<BrokerWindow> broker_empty, broker_full;
  double integrity_wait = 0;
  std::vector<double> empty_queries, full_queries;  // ms, sorted
  if (!no_broker && !existing) {
    store->reset();  // the broker opens the file now
    const std::string certs = dir + "/certs";
    const std::string make = std::string(REFBROKER_SOURCE_DIR) +
                             "/certs/make-dev-certs.sh --registry " + REFBROKER_SOURCE_DIR +
                             "/deploy/registry.toml --out " + certs + " >/dev/null";
    if (std::system(make.c_str()) != 0) {
      std::fprintf(stderr, "certificates: %s failed\n", make.c_str());
      return 2;
    }
    // `name`: the store's, as open_store names it; "" for a fresh SQLite file in the broker's
    // own directory.
    auto config = [&](const std::string& name) {
      refbroker::testing::BrokerConfig c;
      c.postgres = postgres;
      if (postgres) {
        c.pg_conninfo = conninfo;
        c.pg_schema = schema_of(name);  // kept by the broker; dropped here
      } else {
        c.sqlite_path = name.empty() ? "" : sqlite_path(name);
      }
      c.tls_dir = certs;
      c.log_level = "warn";  // the info level logs a line per publish
      c.extra_toml = "[limits]\ncalls_per_second = 1000000\nburst = 1000000\n";
      return c;
    };
    refbroker::testing::BrokerProcess full(config("full"));
    if (absl::Status s = full.Start(); !s.ok()) {
      std::fprintf(stderr, "broker on the full store: %s\n", s.ToString().c_str());
      return 2;
    }
    integrity_wait = WaitForIntegrityCheck(full.pid());
    uint64_t next_record = end;  // request ids after every record published so far
    for (int k = 0; k < kWindows; ++k) {
      {
        const std::string empty_name = "broker-empty-" + std::to_string(k);
        if (postgres) drop_store(empty_name);
        refbroker::testing::BrokerProcess empty(config(postgres ? empty_name : ""));
        if (absl::Status s = empty.Start(); !s.ok()) {
          std::fprintf(stderr, "broker on an empty store: %s\n", s.ToString().c_str());
          return 2;
        }
        pause();
        broker_empty.push_back(PublishThroughBroker(
            empty, certs, **reg, 0, probe, [&](uint64_t n) { return n % visit_patients; },
            threads));
        if (k == 0) {  // the query on a store of one window: what the broker's path adds
          empty_queries = QueryThroughBroker(empty, certs, **reg, visit_patients, queries, 43);
        }
        empty.Stop();
        if (postgres) drop_store(empty_name);
      }
      std::vector<uint64_t> visit(visit_patients);
      for (auto& p : visit) p = pick() % patients;
      const uint64_t start = next_record;
      next_record += probe;
      pause();
      broker_full.push_back(PublishThroughBroker(
          full, certs, **reg, start, start + probe,
          [&](uint64_t n) { return visit[(n - start) % visit.size()]; }, threads));
    }
    full_queries = QueryThroughBroker(full, certs, **reg, patients, queries, 43);
    full.Stop();
  }
  std::printf("recognition_bench: %llu records, %llu patients, %d publishers, %u cores, %s, %s\n",
              (unsigned long long)records, (unsigned long long)patients, threads,
              std::thread::hardware_concurrency(),
              with_audit ? "each publish with its audit entry" : "no audit entries (--no-audit)",
              postgres ? "PostgreSQL (a schema per store)" : "SQLite");
  if (existing) {
    // No empty store was measured: a ratio would compare the phase with itself.
    std::printf(
        "  publish rate, %llu stored   %10.0f /s   (--existing: no empty store, no ratio)\n",
        (unsigned long long)bulk_end, full_rate);
  } else {
    std::printf("  publish rate, empty store       %10.0f /s\n", empty_rate);
    std::printf("    (windows of %llu records: %s)\n", (unsigned long long)probe,
                Rates(empty_windows).c_str());
    std::printf("  publish rate, %llu stored   %10.0f /s   ratio %.2f (target >= 0.90)\n",
                (unsigned long long)bulk_end, full_rate, full_rate / empty_rate);
  }
  std::printf("    (windows of %llu records, %llu patients each: %s)\n", (unsigned long long)probe,
              (unsigned long long)visit_patients, Rates(full_windows).c_str());
  std::printf("  every record a different patient %9.0f /s", scattered_rate);
  if (!existing)
    std::printf("   %.2f of the empty store's (worst case, no target)",
                scattered_rate / empty_rate);
  std::printf("\n    (windows of %llu records: %s)\n", (unsigned long long)probe,
              Rates(scattered_windows).c_str());
  // Per record, medians of the windows: the empty store's when there is one, the full store's
  // (the same workload), the full store's with every record a different patient.
  auto per_record = [&](const char* label, double Window::*field, const char* format) {
    std::string line = std::string("  ") + label;
    line.resize(34, ' ');
    char value[32];
    if (!existing) {
      std::snprintf(value, sizeof value, format, Median(empty_windows, field));
      line += std::string(value) + " empty  ";
    }
    std::snprintf(value, sizeof value, format, Median(full_windows, field));
    line += std::string(value) + (existing ? " stored  " : " full  ");
    std::snprintf(value, sizeof value, format, Median(scattered_windows, field));
    line += std::string(value) + " scattered";
    std::printf("%s\n", line.c_str());
  };
  if (postgres) {
    // The writer here is the broker's thread that talks to the database; the work is the
    // server's.
    per_record("database server CPU per record", &Window::server_us, "%6.1f us");
    per_record("writer thread CPU per record", &Window::writer_us, "%6.1f us");
    per_record("other threads' CPU per record", &Window::others_us, "%6.1f us");
  } else {
    per_record("writer CPU per record", &Window::writer_us, "%6.1f us");
    per_record("checkpointer CPU per record", &Window::checkpoint_us, "%6.1f us");
    per_record("other threads' CPU per record", &Window::others_us, "%6.1f us");
    per_record("writer waiting for a core", &Window::writer_queued_us, "%6.1f us");
    per_record("writer's page reads per record", &Window::writer_reads, "%9.2f");
    per_record("records per commit", &Window::records_per_sync, "%9.1f");
    per_record("WAL frames per record", &Window::frames_per_record, "%9.2f");
    per_record("WAL write+sync per record", &Window::sync_us, "%6.1f us");
  }
  std::printf("  load time                       %10.1f s\n", load_secs);
  if (!postgres) {
    std::printf("  store file in the page cache    %10.1f MiB of %.1f MiB (after the windows)\n",
                cached_after_load / 1048576.0,
                static_cast<double>(std::filesystem::file_size(sqlite_path("full"))) / 1048576.0);
  }
  std::printf("  recognition query (3 items)     p50 %.3f ms   p99 %.3f ms (target p99 < 2 ms)\n",
              Percentile(latencies, 0.5) / 1000, Percentile(latencies, 0.99) / 1000);
  std::printf("  store size on disk              %10.1f MiB (%.0f bytes/record)\n",
              size / 1048576.0, static_cast<double>(size) / records);
  uint64_t broker_errors = 0;
  if (!broker_full.empty()) {
    for (const auto* phase : {&broker_empty, &broker_full}) {
      for (const BrokerWindow& w : *phase) broker_errors += w.errors;
    }
    const double empty_b = Median(broker_empty, &BrokerWindow::rate);
    const double full_b = Median(broker_full, &BrokerWindow::rate);
    std::printf(
        "  through the broker (refbroker on loopback, mTLS, %d callers, one call each at "
        "a time; the same workload, windows alternating):\n",
        threads);
    std::printf("    publish rate, empty store     %10.0f /s   (windows: %s)\n", empty_b,
                Rates(broker_empty).c_str());
    std::printf(
        "    publish rate, %llu stored %10.0f /s   ratio %.2f (target >= 0.90)  "
        "(windows: %s)\n",
        (unsigned long long)bulk_end, full_b, full_b / empty_b, Rates(broker_full).c_str());
    std::printf("    broker CPU per publish        %8.1f us empty  %8.1f us full\n",
                Median(broker_empty, &BrokerWindow::broker_us),
                Median(broker_full, &BrokerWindow::broker_us));
    std::printf("    its writer's CPU per publish  %8.1f us empty  %8.1f us full\n",
                Median(broker_empty, &BrokerWindow::writer_us),
                Median(broker_full, &BrokerWindow::writer_us));
    if (postgres) {
      std::printf("    database server CPU per publish %6.1f us empty  %8.1f us full\n",
                  Median(broker_empty, &BrokerWindow::server_us),
                  Median(broker_full, &BrokerWindow::server_us));
    }
    std::printf(
        "    publish p50 / p99             %.2f / %.2f ms empty  %.2f / %.2f ms full\n",
        Median(broker_empty, &BrokerWindow::p50_ms), Median(broker_empty, &BrokerWindow::p99_ms),
        Median(broker_full, &BrokerWindow::p50_ms), Median(broker_full, &BrokerWindow::p99_ms));
    std::printf(
        "    recognition query (3 items), one call at a time: p50 %.3f ms  p99 %.3f ms "
        "(%llu stored; target p99 < 2 ms); on a store of one window p50 %.3f ms  "
        "p99 %.3f ms\n",
        Percentile(full_queries, 0.5), Percentile(full_queries, 0.99), (unsigned long long)bulk_end,
        Percentile(empty_queries, 0.5), Percentile(empty_queries, 0.99));
    std::printf("    the full store's integrity check at the broker's start: waited %.1f s\n",
                integrity_wait);
    if (broker_errors > 0) {
      std::printf("    publishes refused: %llu\n", (unsigned long long)broker_errors);
    }
  }
  store->reset();
  drop_store("full");
  if (temporary) std::filesystem::remove_all(dir);
  return broker_errors > 0 ? 1 : 0;
}

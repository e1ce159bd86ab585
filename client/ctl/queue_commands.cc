// refctl: connection helpers and the queue, dead-letter and health commands.

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>

#include "client/ctl/commands.h"
#include "client/ctl/table.h"
#include "client/refclient/admin_client.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace refctl {
namespace {

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// Age of the oldest waiting message; "-" when nothing waits.
std::string Age(int64_t seconds, uint64_t depth) {
  if (depth == 0) return "-";
  if (seconds <= 0) return "0s";
  char buf[32];
  if (seconds < 60)
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(seconds));
  else if (seconds < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(seconds / 60),
                  static_cast<long long>(seconds % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(seconds / 3600),
                  static_cast<long long>(seconds % 3600 / 60));
  return buf;
}

std::string KindName(refbroker::v1::QueueKind k) {
  std::string n = refbroker::v1::QueueKind_Name(k);
  for (char& c : n) c = c == '_' ? '-' : static_cast<char>(std::tolower(c));
  return n;
}

absl::StatusOr<refbroker::v1::QueueRef> ParseQueue(const std::string& text) {
  auto slash = text.find('/');
  refbroker::v1::QueueRef q;
  if (slash == std::string::npos) {
    return absl::InvalidArgumentError("--queue: expected <owner>/<kind>, e.g. CODE/referrals");
  }
  q.set_owner(text.substr(0, slash));
  std::string kind = text.substr(slash + 1);
  for (char& c : kind) c = c == '-' ? '_' : static_cast<char>(std::toupper(c));
  refbroker::v1::QueueKind k;
  if (!refbroker::v1::QueueKind_Parse(kind, &k) || k == refbroker::v1::QUEUE_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError("--queue: unknown kind " + text.substr(slash + 1));
  }
  q.set_kind(k);
  return q;
}

}  // namespace

std::unique_ptr<refclient::Connection> Connect(const Globals& g) {
  std::string dir = g.certs_dir.empty() ? Env("REFCTL_CERTS", "certs/dev") : g.certs_dir;
  auto o = refclient::CertDirOptions(
      g.brokers.empty() ? std::vector<std::string>{Env("REFCTL_BROKER", "127.0.0.1:7443")}
                        : g.brokers,
      dir, g.as);
  if (!g.ca.empty()) o.ca_file = g.ca;  // explicit files override the directory
  if (!g.cert.empty()) o.cert_file = g.cert;
  if (!g.key.empty()) o.key_file = g.key;
  auto c = refclient::Connection::Create(o);
  if (!c.ok()) {
    std::cerr << "refctl: " << c.status().message() << "\n";
    std::exit(2);
  }
  return std::move(*c);
}

int Fail(const absl::Status& s) {
  std::cerr << "refctl: " << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
  return 1;
}

void PrintJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  std::cout << out;
}

std::string FormatTime(int64_t unix_seconds, bool utc) {
  std::time_t t = static_cast<std::time_t>(unix_seconds + (utc ? 0 : 8 * 3600));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(buf) + (utc ? " UTC" : " +08:00");
}

int Queues(const Globals& g, const std::string& owner) {
  auto conn = Connect(g);
  auto r = refclient::AdminClient(*conn).ListQueues(owner);
  if (!r.ok()) return Fail(r.status());
  if (g.json) {
    PrintJson(*r);
    return 0;
  }
  for (const char* dir : {"up", "down", ""}) {
    refctl::Table t({"QUEUE", "INSTITUTION", "DIR", "DEPTH", "IN FLIGHT", "OLDEST", "DEAD",
                     "CONSUMERS", "RETAINED"});
    int rows = 0;
    for (const auto& q : r->queues()) {
      if (q.direction() != dir) continue;
      uint32_t consumers = 0;
      for (const auto& gs : q.groups()) consumers += gs.consumers();
      t.AddRow({q.queue().owner() + "/" + KindName(q.queue().kind()), q.owner_name(),
                q.direction().empty() ? "-" : q.direction(), std::to_string(q.depth()),
                std::to_string(q.in_flight()), Age(q.oldest_age_seconds(), q.depth()),
                std::to_string(q.dead_letters()), std::to_string(consumers),
                std::to_string(q.retained())});
      rows++;
    }
    if (rows == 0) continue;
    std::cout << (std::string(dir) == "up"     ? "Up-referral queues (county receivers)\n"
                  : std::string(dir) == "down" ? "Down-referral queues (township receivers)\n"
                                               : "Other queues\n");
    t.Print(std::cout);
    std::cout << "\n";
  }
  return 0;
}

int DlqList(const Globals& g, const std::string& queue, const std::string& group, uint32_t limit) {
  refbroker::v1::ListDeadLettersRequest req;
  if (!queue.empty()) {
    auto q = ParseQueue(queue);
    if (!q.ok()) return Fail(q.status());
    *req.mutable_queue() = *q;
  }
  req.set_consumer_group(group);
  req.set_limit(limit);
  auto conn = Connect(g);
  auto r = refclient::AdminClient(*conn).ListDeadLetters(req);
  if (!r.ok()) return Fail(r.status());
  if (g.json) {
    PrintJson(*r);
    return 0;
  }
  refctl::Table t({"QUEUE", "GROUP", "SEQ", "SUBJECT", "ATTEMPTS", "LAST ERROR"});
  for (const auto& d : r->dead_letters()) {
    t.AddRow({d.queue().owner() + "/" + KindName(d.queue().kind()), d.consumer_group(),
              std::to_string(d.sequence()), d.subject_id(), std::to_string(d.attempts()),
              d.last_error()});
  }
  t.Print(std::cout);
  std::cout << r->dead_letters_size() << " dead letter(s)\n";
  return 0;
}

int DlqRequeue(const Globals& g, const std::string& queue, const std::string& group, uint64_t seq) {
  auto q = ParseQueue(queue);
  if (!q.ok()) return Fail(q.status());
  refbroker::v1::RequeueDeadLetterRequest req;
  *req.mutable_queue() = *q;
  req.set_consumer_group(group);
  req.set_sequence(seq);
  auto conn = Connect(g);
  auto r = refclient::AdminClient(*conn).Requeue(req);
  if (!r.ok()) return Fail(r.status());
  if (g.json)
    PrintJson(*r);
  else
    std::cout << "requeued " << r->requeued() << " message(s)\n";
  return 0;
}

int Health(const Globals& g) {
  auto conn = Connect(g);
  auto stub = grpc::health::v1::Health::NewStub(conn->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return Fail(refclient::FromGrpc(s));
  std::cout << grpc::health::v1::HealthCheckResponse_ServingStatus_Name(resp.status()) << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace refctl

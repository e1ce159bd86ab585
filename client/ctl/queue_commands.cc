// refctl: connection helpers and the queue, dead-letter and health commands.

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <thread>

#include "client/ctl/commands.h"
#include "client/ctl/requeue_list.h"
#include "client/ctl/table.h"
#include "client/ctl/views.h"
#include "client/refclient/admin_client.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace refctl {
namespace {

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
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

int Queues(const Globals& g, const std::string& owner) {
  auto conn = Connect(g);
  auto r = refclient::AdminClient(*conn).ListQueues(owner);
  if (!r.ok()) return Fail(r.status());
  if (g.json) {
    PrintJson(*r);
    return 0;
  }
  PrintQueues(*r, std::cout);
  return 0;
}

int Watch(const Globals& g, const std::string& owner, int interval_s, int count) {
  auto conn = Connect(g);
  refclient::AdminClient admin(*conn);
  for (int i = 0; count <= 0 || i < count; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::seconds(interval_s));
    auto r = admin.ListQueues(owner);
    std::cout << "\x1b[H\x1b[2J";  // home and clear: redraw in place
    std::cout << "refctl watch  " << FormatTime(std::time(nullptr), g.utc) << "  every "
              << interval_s << "s (Ctrl-C to stop)\n\n";
    if (!r.ok()) {
      std::cout << "broker: " << absl::StatusCodeToString(r.status().code()) << ": "
                << r.status().message() << "\n";
    } else {
      PrintQueues(*r, std::cout);
    }
    std::cout.flush();
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

int DlqRequeueFrom(const Globals& g, const std::string& path) {
  std::string text;
  {
    std::ifstream file;
    std::istream* in = &std::cin;
    if (path != "-") {
      file.open(path, std::ios::binary);
      if (!file) return Fail(absl::NotFoundError("--from: cannot read " + path));
      in = &file;
    }
    constexpr size_t kMaxBytes = 16u << 20;  // 1000 dead letters are well under 1 MiB
    std::vector<char> buf(64 * 1024);
    while (in->read(buf.data(), static_cast<std::streamsize>(buf.size())) || in->gcount() > 0) {
      text.append(buf.data(), static_cast<size_t>(in->gcount()));
      if (text.size() > kMaxBytes) {
        return Fail(absl::InvalidArgumentError("--from: larger than 16 MiB"));
      }
    }
  }
  auto requests = ParseRequeueList(text);
  if (!requests.ok()) {
    std::cerr << "refctl: " << requests.status().message() << "\n";
    return 2;
  }
  auto conn = Connect(g);
  refclient::AdminClient admin(*conn);
  refbroker::v1::RequeueDeadLetterResponse total;
  int refused = 0;
  for (const auto& req : *requests) {
    auto r = admin.Requeue(req);
    if (!r.ok()) {
      ++refused;
      std::cerr << "refctl: " << req.queue().owner() << "/" << KindName(req.queue().kind()) << " "
                << req.consumer_group() << " #" << req.sequence() << ": "
                << absl::StatusCodeToString(r.status().code()) << ": " << r.status().message()
                << "\n";
      continue;
    }
    total.set_requeued(total.requeued() + r->requeued());
  }
  if (g.json) {
    PrintJson(total);
  } else {
    std::cout << "requeued " << total.requeued() << " message(s) of " << requests->size()
              << " listed";
    if (refused > 0) std::cout << "; " << refused << " refused";
    std::cout << "\n";
  }
  return refused > 0 ? 1 : 0;
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

#include "client/bench/load.h"

#include <atomic>
#include <memory>
#include <thread>
#include <unordered_map>

#include "client/refclient/connection.h"
#include "client/refclient/referral_stream.h"
#include "client/refclient/subscriber.h"
#include "client/sim/synthetic_referral.h"
#include "refbroker/v1/referral.grpc.pb.h"

namespace refbench {
namespace {

namespace v1 = refbroker::v1;

// Every submission of the run, by client_request_id: when it was sent, whether it was
// acknowledged and delivered; the latencies.
class Tracker {
 public:
  void Sent(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_[id].sent = Clock::now();
  }

  void Answered(const std::string& id, const absl::Status& status) {
    auto now = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    last_answer_ = now;
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    if (!status.ok()) {
      if (refused_++ == 0) first_refusal_ = status.ToString();
      return;
    }
    Entry& e = it->second;
    if (e.acked) return;
    e.acked = true;
    ++acked_;
    submit_.Add(MillisBetween(e.sent, now));
    if (!e.delivered) ++undelivered_;
  }

  void Delivered(const std::string& id) {
    auto now = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.delivered) return;  // another run's, or a repeat
    Entry& e = it->second;
    e.delivered = true;
    ++delivered_;
    last_delivery_ = now;
    delivery_.Add(MillisBetween(e.sent, now));
    if (e.acked) --undelivered_;
  }

  void set_subscribed() { subscribed_ = true; }

  size_t undelivered() {
    std::lock_guard<std::mutex> lock(mu_);
    return undelivered_;
  }

  void Fill(LoadResult& r, Clock::time_point start) {
    std::lock_guard<std::mutex> lock(mu_);
    r.acked = acked_;
    r.refused = refused_;
    r.first_refusal = first_refusal_;
    r.seconds = std::chrono::duration<double>(last_answer_ - start).count();
    r.per_second = r.seconds > 0 ? static_cast<double>(acked_) / r.seconds : 0;
    r.submit = submit_.Summarize();
    r.delivery = delivery_.Summarize();
    if (subscribed_) {
      r.delivered = acked_ - undelivered_;
      r.lost = undelivered_;
      double until_last = std::chrono::duration<double>(last_delivery_ - start).count();
      r.delivered_per_second = until_last > 0 ? static_cast<double>(r.delivered) / until_last : 0;
    }
  }

 private:
  struct Entry {
    Clock::time_point sent;
    bool acked = false;
    bool delivered = false;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  LatencyRecorder submit_, delivery_;
  size_t acked_ = 0, refused_ = 0, delivered_ = 0, undelivered_ = 0;
  Clock::time_point last_answer_, last_delivery_;
  std::string first_refusal_;
  bool subscribed_ = false;  // without a subscriber nothing is delivered, nothing counts as lost
};

// Referral-sized messages from one clinic: a few made-up patients, padded to the payload size
// with a clinical summary; each Next() has a fresh request id.
class Messages {
 public:
  Messages(const LoadOptions& o, const Party& clinic, uint64_t seed)
      : prefix_(o.run_tag + "-" + clinic.cert + "-" + std::to_string(seed) + "-") {
    refsim::SyntheticReferrals gen(seed);
    for (int i = 0; i < 16; ++i) {
      v1::Referral r = gen.Make(clinic.code, o.receiver.code, v1::ROUTINE, "x");
      r.set_client_request_id(prefix_ + "00000000");
      int64_t missing = o.payload_bytes - static_cast<int64_t>(r.ByteSizeLong()) - 3;
      if (missing > 0) {
        r.set_clinical_summary(r.clinical_summary() + std::string(missing, '.'));
      }
      pool_.push_back(std::move(r));
    }
  }
  const v1::Referral& Next() {
    v1::Referral& r = pool_[n_ % pool_.size()];
    r.set_client_request_id(prefix_ + std::to_string(n_++));
    return r;
  }

 private:
  std::string prefix_;
  std::vector<v1::Referral> pool_;
  uint64_t n_ = 0;
};

Clock::time_point Deadline(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

void StreamFrom(const LoadOptions& o, refclient::Connection& conn, const Party& clinic,
                uint64_t seed, size_t limit, Tracker& tracker) {
  Messages messages(o, clinic, seed);
  std::mutex mu;
  std::vector<std::string> ids;  // by position - 1
  refclient::ReferralStream stream(
      conn, static_cast<size_t>(o.window),
      [&](uint64_t position, absl::StatusOr<v1::SubmitReferralResponse> answer) {
        std::string id;
        {
          std::lock_guard<std::mutex> lock(mu);
          id = ids[position - 1];
        }
        tracker.Answered(id, answer.status());
      });
  auto until = Deadline(o.seconds);
  for (size_t sent = 0; Clock::now() < until && (limit == 0 || sent < limit); ++sent) {
    const v1::Referral& r = messages.Next();
    {
      std::lock_guard<std::mutex> lock(mu);
      ids.push_back(r.client_request_id());
    }
    tracker.Sent(r.client_request_id());
    if (!stream.Send(r).ok()) break;
  }
  stream.Close().IgnoreError();
}

void UnaryFrom(const LoadOptions& o, refclient::Connection& conn, const Party& clinic,
               uint64_t seed, Clock::time_point until, Tracker& tracker) {
  Messages messages(o, clinic, seed);
  auto stub = v1::ReferralService::NewStub(conn.channel());
  v1::SubmitReferralRequest request;
  v1::SubmitReferralResponse response;
  while (Clock::now() < until) {
    *request.mutable_referral() = messages.Next();
    const std::string& id = request.referral().client_request_id();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    context.set_wait_for_ready(true);  // a reconnecting channel delays a call, never refuses it
    tracker.Sent(id);
    grpc::Status s = stub->SubmitReferral(&context, request, &response);
    tracker.Answered(id, refclient::FromGrpc(s));
  }
}

}  // namespace

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kStream:
      return "stream";
    case Mode::kUnary:
      return "unary";
    case Mode::kConcurrent:
      return "concurrent";
  }
  return "?";
}

LoadResult RunLoad(const LoadOptions& o) {
  LoadResult result;
  std::vector<std::unique_ptr<refclient::Connection>> conns;
  for (const Party& clinic : o.clinics) {
    auto conn =
        refclient::Connection::Create(refclient::CertDirOptions({o.target}, o.certs, clinic.cert));
    if (!conn.ok()) {
      result.error = std::string(conn.status().message());
      return result;
    }
    conns.push_back(std::move(*conn));
  }
  if (conns.empty()) {
    result.error = "no clinics";
    return result;
  }
  // Every channel connected (TLS handshakes done) before the clock starts: the load measures
  // submits, not 64 handshakes racing a busy broker.
  for (auto& conn : conns) {
    if (!conn->channel()->WaitForConnected(std::chrono::system_clock::now() +
                                           std::chrono::seconds(30))) {
      result.error = "could not connect to " + o.target;
      return result;
    }
  }
  Tracker tracker;

  std::unique_ptr<refclient::Connection> hospital;
  std::unique_ptr<refclient::Subscriber> subscriber;
  std::thread subscriber_thread;
  if (o.subscribe) {
    auto conn = refclient::Connection::Create(
        refclient::CertDirOptions({o.target}, o.certs, o.receiver.cert));
    if (!conn.ok()) {
      result.error = std::string(conn.status().message());
      return result;
    }
    hospital = std::move(*conn);
    tracker.set_subscribed();
    refclient::SubscriberOptions so;
    so.queue.set_owner(o.receiver.code);
    so.queue.set_kind(v1::REFERRALS);
    so.group = "refbench";
    so.window = 512;
    subscriber = std::make_unique<refclient::Subscriber>(*hospital, so);
    subscriber_thread = std::thread([&] {
      subscriber
          ->Run([&](const v1::Delivery& d) {
            tracker.Delivered(d.referral().client_request_id());
            return refclient::Decision::Ack();
          })
          .IgnoreError();
    });
  }

  auto start = Clock::now();
  std::vector<std::thread> threads;
  switch (o.mode) {
    case Mode::kStream:
      for (size_t i = 0; i < conns.size(); ++i) {
        // With a limit, the clinics share it (the first ones take the remainder).
        size_t limit = o.max_submits / conns.size() + (i < o.max_submits % conns.size() ? 1 : 0);
        if (o.max_submits > 0 && limit == 0) continue;
        threads.emplace_back(
            [&, i, limit] { StreamFrom(o, *conns[i], o.clinics[i], 1000 + i, limit, tracker); });
      }
      break;
    case Mode::kUnary: {
      auto until = Deadline(o.seconds);
      threads.emplace_back(
          [&, until] { UnaryFrom(o, *conns[0], o.clinics[0], 1, until, tracker); });
      break;
    }
    case Mode::kConcurrent: {
      auto until = Deadline(o.seconds);
      for (int k = 0; k < o.callers; ++k) {
        size_t i = static_cast<size_t>(k) % conns.size();
        threads.emplace_back([&, i, k, until] {
          UnaryFrom(o, *conns[i], o.clinics[i], 2000 + static_cast<uint64_t>(k), until, tracker);
        });
      }
      break;
    }
  }
  for (auto& t : threads) t.join();

  if (subscriber) {
    auto until = Deadline(o.drain_seconds);
    while (tracker.undelivered() > 0 && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    subscriber->Stop();
    subscriber_thread.join();
  }
  tracker.Fill(result, start);
  return result;
}

}  // namespace refbench

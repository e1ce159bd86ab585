// refsim: drives a whole alliance. Every township clinic submits up-referrals at a chosen total
// rate (each with its own certificate); every lead county hospital subscribes to its referral
// queue and acks. A progress line while it runs; at the end a summary of sent, acknowledged,
// delivered and lost (acknowledged by the broker but never delivered). Exit 1 if any was lost.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "broker/auth/registry.h"
#include "client/refclient/connection.h"
#include "client/refclient/referral_client.h"
#include "client/refclient/subscriber.h"
#include "client/sim/synthetic_referral.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::vector<std::string> brokers{"127.0.0.1:7443"};
  std::string certs = "certs/dev";
  std::string registry = "deploy/registry.toml";
  double rate = 20;
  double duration = 20;
  double drain = 20;
  std::string group = "his";
  uint32_t window = 32;
  uint64_t seed = 0;
  bool json = false;
  bool no_subscribe = false;
  double refuse_share = 0;  // share of referrals the hospitals' systems refuse (nack)
};

struct Tally {
  std::atomic<uint64_t> sent{0}, acked{0}, rejected{0}, failed{0}, duplicates{0};
  std::mutex mu;
  std::set<std::string> acked_ids;      // the broker acknowledged the submission; guarded by mu
  std::set<std::string> delivered_ids;  // reached a hospital at least once; guarded by mu
  std::set<std::string> refused_ids;    // the hospital's system nacked it; guarded by mu
  uint64_t deliveries = 0;              // guarded by mu

  // Acknowledged by the broker but never delivered to a hospital.
  uint64_t Lost() {
    std::lock_guard<std::mutex> lock(mu);
    uint64_t lost = 0;
    for (const auto& id : acked_ids) lost += delivered_ids.count(id) ? 0 : 1;
    return lost;
  }
};

std::unique_ptr<refclient::Connection> Connect(const Options& o, const std::string& stem) {
  refclient::ConnectionOptions c;
  c.targets = o.brokers;
  c.ca_file = o.certs + "/ca.crt";
  c.cert_file = o.certs + "/" + stem + ".crt";
  c.key_file = o.certs + "/" + stem + ".key";
  auto conn = refclient::Connection::Create(c);
  if (!conn.ok()) {
    std::cerr << "refsim: " << conn.status().message() << "\n";
    std::exit(2);
  }
  return std::move(*conn);
}

void RunClinic(const Options& o, const refbroker::auth::Principal& clinic,
               const std::vector<std::string>& hospitals, double rate, Clock::time_point end,
               uint64_t seed, Tally& tally) {
  auto conn = Connect(o, clinic.cert);
  refclient::ReferralClient client(*conn);
  refsim::SyntheticReferrals gen(seed);
  auto interval = std::chrono::duration<double>(1.0 / rate);
  auto next = Clock::now();
  uint64_t n = 0;
  while (Clock::now() < end) {
    std::string request_id = clinic.cert + "-" + std::to_string(seed) + "-" + std::to_string(n++);
    std::string to = hospitals[gen.rng()() % hospitals.size()];
    auto referral = gen.Make(clinic.id, to, gen.RandomPriority(), request_id);
    tally.sent++;
    auto r = client.Submit(referral);
    if (r.ok()) {
      tally.acked++;
      if (r->duplicate()) tally.duplicates++;
      std::lock_guard<std::mutex> lock(tally.mu);
      tally.acked_ids.insert(r->referral().id());
    } else if (refclient::IsRetryable(r.status())) {
      tally.failed++;
    } else {
      tally.rejected++;
      std::cerr << "\nrefsim: rejected: " << r.status().message() << "\n";
    }
    next += std::chrono::duration_cast<Clock::duration>(interval);
    std::this_thread::sleep_until(next);
  }
}

// A live line on a terminal; one line every few seconds in a log.
void Progress(double t, Tally& tally, bool final_line) {
  static const bool tty = isatty(fileno(stderr));
  static double last_logged = -10;
  if (!tty && !final_line && t - last_logged < 5) return;
  last_logged = t;
  std::lock_guard<std::mutex> lock(tally.mu);
  std::fprintf(stderr, "%s[%5.1fs] sent %llu  acked %llu  delivered %zu  errors %llu   %s",
               tty ? "\r" : "", t, static_cast<unsigned long long>(tally.sent.load()),
               static_cast<unsigned long long>(tally.acked.load()), tally.delivered_ids.size(),
               static_cast<unsigned long long>(tally.failed + tally.rejected),
               final_line || !tty ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"refsim — simulates a county alliance's referral traffic through refbroker"};
  Options o;
  app.add_option("--broker", o.brokers, "broker host:port (repeatable)");
  app.add_option("--certs", o.certs, "directory with ca.crt and <cert>.crt/.key per principal");
  app.add_option("--registry", o.registry, "registry TOML (the sample alliance)");
  app.add_option("--rate", o.rate, "referrals per second, all clinics together")
      ->check(CLI::Range(0.1, 100000.0));
  app.add_option("--duration", o.duration, "seconds of submitting");
  app.add_option("--drain", o.drain, "seconds to wait for deliveries after submitting stops");
  app.add_option("--group", o.group, "consumer group of the hospitals' subscribers");
  app.add_option("--window", o.window, "subscriber window");
  app.add_option("--seed", o.seed, "random seed (default: time)");
  app.add_flag("--json", o.json, "print the summary as JSON");
  app.add_flag("--no-subscribe", o.no_subscribe, "submit only (leave messages queued)");
  app.add_option("--refuse-share", o.refuse_share,
                 "share of referrals the hospitals' systems refuse (nack), e.g. 0.01")
      ->check(CLI::Range(0.0, 1.0));
  CLI11_PARSE(app, argc, argv);
  if (o.seed == 0) o.seed = static_cast<uint64_t>(Clock::now().time_since_epoch().count());

  auto registry = refbroker::auth::Registry::LoadFile(o.registry);
  if (!registry.ok()) {
    std::cerr << "refsim: " << registry.status().message() << "\n";
    return 2;
  }
  std::vector<const refbroker::auth::Principal*> clinics, hospitals;
  std::vector<std::string> hospital_codes;
  for (const auto& p : (*registry)->principals()) {
    if (p.role == refbroker::auth::Role::kClinic) clinics.push_back(&p);
    if (p.role == refbroker::auth::Role::kHospital && p.lead) {
      hospitals.push_back(&p);
      hospital_codes.push_back(p.id);
    }
  }
  if (clinics.empty() || hospitals.empty()) {
    std::cerr << "refsim: the registry needs clinics and lead hospitals\n";
    return 2;
  }

  Tally tally;
  std::vector<std::unique_ptr<refclient::Connection>> sub_conns;
  std::vector<std::unique_ptr<refclient::Subscriber>> subs;
  std::vector<std::thread> sub_threads;
  if (!o.no_subscribe) {
    for (const auto* h : hospitals) {
      sub_conns.push_back(Connect(o, h->cert));
      refclient::SubscriberOptions so;
      so.queue.set_owner(h->id);
      so.queue.set_kind(refbroker::v1::REFERRALS);
      so.group = o.group;
      so.window = o.window;
      subs.push_back(std::make_unique<refclient::Subscriber>(*sub_conns.back(), so));
      sub_threads.emplace_back([&tally, &o, sub = subs.back().get()] {
        absl::Status s = sub->Run([&tally, &o](const refbroker::v1::Delivery& d) {
          std::lock_guard<std::mutex> lock(tally.mu);
          tally.deliveries++;
          tally.delivered_ids.insert(d.referral().id());
          // The same referral is refused on every attempt, as a real mapping error would be.
          if (std::hash<std::string>()(d.referral().id()) % 10000 < o.refuse_share * 10000) {
            tally.refused_ids.insert(d.referral().id());
            return refclient::Decision::Nack("HIS: department code not mapped");
          }
          return refclient::Decision::Ack();
        });
        if (!s.ok()) std::cerr << "\nrefsim: subscriber stopped: " << s.message() << "\n";
      });
    }
  }

  auto start = Clock::now();
  auto end = start +
             std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration));
  std::vector<std::thread> clinic_threads;
  for (size_t i = 0; i < clinics.size(); ++i) {
    clinic_threads.emplace_back(RunClinic, std::cref(o), std::cref(*clinics[i]),
                                std::cref(hospital_codes), o.rate / clinics.size(), end, o.seed + i,
                                std::ref(tally));
  }
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  while (Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    Progress(elapsed(), tally, false);
  }
  for (auto& t : clinic_threads) t.join();
  auto drain_end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.drain));
  while (!o.no_subscribe && tally.Lost() > 0 && Clock::now() < drain_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    Progress(elapsed(), tally, false);
  }
  Progress(elapsed(), tally, true);
  for (auto& s : subs) s->Stop();
  for (auto& t : sub_threads) t.join();

  uint64_t lost = o.no_subscribe ? 0 : tally.Lost();
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  unsigned long long sent = u(tally.sent), acked = u(tally.acked),
                     delivered = u(tally.delivered_ids.size()), refused = u(tally.refused_ids.size()),
                     redeliveries = u(tally.deliveries - tally.delivered_ids.size()),
                     rejected = u(tally.rejected), failed = u(tally.failed);
  if (o.json) {
    std::printf("{\"sent\":%llu,\"acknowledged\":%llu,\"delivered\":%llu,\"lost\":%llu,"
                "\"redeliveries\":%llu,\"refused\":%llu,\"rejected\":%llu,\"failed\":%llu}\n",
                sent, acked, delivered, u(lost), redeliveries, refused, rejected, failed);
  } else {
    std::printf("refsim summary: %zu clinics -> %zu county hospitals, %.0f s at %.1f/s\n",
                clinics.size(), hospitals.size(), o.duration, o.rate);
    std::printf("  sent          %llu\n"
                "  acknowledged  %llu  (durable in the broker)\n"
                "  delivered     %llu  (reached a county hospital's system)\n"
                "  lost          %llu  (acknowledged but never delivered)\n"
                "  redeliveries  %llu\n"
                "  refused       %llu  (nacked by the hospital: retried, then dead letters)\n"
                "  rejected      %llu  (invalid)\n"
                "  failed        %llu  (transient, after retries)\n",
                sent, acked, delivered, u(lost), redeliveries, refused, rejected, failed);
  }
  return lost == 0 && tally.rejected == 0 ? 0 : 1;
}

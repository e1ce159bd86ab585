// refsim: simulates a county alliance's referral traffic through refbroker (see
// alliance_simulation.h). Exit 1 if any acknowledged referral was lost or a valid one rejected.

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>

#include "broker/auth/registry.h"
#include "client/sim/alliance_simulation.h"

int main(int argc, char** argv) {
  CLI::App app{"refsim — simulates a county alliance's referral traffic through refbroker"};
  refsim::SimOptions o;
  std::string registry_path = "deploy/registry.toml";
  bool no_subscribe = false, no_journeys = false;
  app.add_option("--broker", o.brokers, "broker host:port (repeatable)");
  app.add_option("--certs", o.certs, "directory with ca.crt and <cert>.crt/.key per principal");
  app.add_option("--registry", registry_path, "registry TOML (the sample alliance)");
  app.add_option("--rate", o.rate, "UP referrals per second, all clinics together")
      ->check(CLI::Range(0.1, 100000.0));
  app.add_option("--duration", o.duration, "seconds of submitting");
  app.add_option("--drain", o.drain, "seconds to wait for deliveries after submitting stops");
  app.add_option("--group", o.group, "consumer group of the subscribers");
  app.add_option("--window", o.window, "subscriber window");
  app.add_option("--seed", o.seed, "random seed (default: time)");
  app.add_option("--refuse-share", o.refuse_share,
                 "share of referrals the hospitals' systems refuse (nack), e.g. 0.01")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--decline-share", o.decline_share, "share the hospitals decline")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--ignore-share", o.ignore_share,
                 "share nobody decides (they breach the decision deadline)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--cancel-share", o.cancel_share, "share the clinics cancel")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--down-share", o.down_share, "share of completed UP legs continued DOWN")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--step-ms", o.step_ms, "a hospital's time between steps of one referral");
  app.add_option("--consult-rate", o.consult_rate,
                 "consults and readings per second, all clinics together (0 = none)");
  app.add_flag("--no-journeys", no_journeys, "only deliver and ack; no decisions");
  app.add_flag("--no-subscribe", no_subscribe, "submit only (leave messages queued)");
  app.add_flag("--json", o.json, "print the summary as JSON");
  app.add_option("--patients-out", o.patients_out,
                 "write every made-up patient (name, ID, phone) to this file, for privacy checks");
  CLI11_PARSE(app, argc, argv);
  o.subscribe = !no_subscribe;
  o.journeys = !no_journeys;
  if (o.seed == 0) {
    o.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  auto registry = refbroker::auth::Registry::LoadFile(registry_path);
  if (!registry.ok()) {
    std::cerr << "refsim: " << registry.status().message() << "\n";
    return 2;
  }
  return refsim::AllianceSimulation(o, **registry).Run();
}

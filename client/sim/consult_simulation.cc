#include "client/sim/consult_simulation.h"

#include <cstdio>
#include <iostream>
#include <random>

#include "client/refclient/connection.h"
#include "client/refclient/consult_client.h"
#include "client/sim/synthetic_referral.h"

namespace refsim {
namespace {

namespace v1 = refbroker::v1;
using refbroker::auth::Principal;
using refbroker::auth::Role;
using SteadyClock = std::chrono::steady_clock;

std::unique_ptr<refclient::Connection> Connect(const SimOptions& o, const std::string& stem) {
  return ConnectOrExit(o, stem);
}

bool Offers(const Principal& p, const std::string& service) {
  for (const auto& s : p.services) {
    if (s == service) return true;
  }
  return false;
}

// The reading's data as the station would record it.
void AddReading(v1::ConsultServiceType service, v1::ReportContent& c, std::mt19937_64& rng) {
  if (service == v1::ECG_READING) {
    auto* r = c.mutable_reading();
    r->set_item_code("ECG-12");
    r->set_item_name("常规12导联心电图");
    for (auto [name, base, unit] : {std::tuple<const char*, int, const char*>{"HR", 60, "bpm"},
                                    {"PR", 140, "ms"},
                                    {"QTc", 400, "ms"}}) {
      auto* m = r->mutable_ecg()->add_measurements();
      m->set_name(name);
      m->set_value(base + static_cast<double>(rng() % 40));
      m->set_unit(unit);
    }
  } else if (service == v1::IMAGING_READING) {
    auto* r = c.mutable_reading();
    r->set_item_code("IMG-CXR");
    r->set_item_name("胸部X线");
    auto* img = r->add_images();
    img->set_study_instance_uid("1.2.156.112605.1." + std::to_string(rng() % 1000000000));
    img->set_modality(v1::XRAY);
    img->set_wado_rs_url("https://pacs.pingyu.example.cn/wado-rs/studies/" +
                         img->study_instance_uid());
  }
}

}  // namespace

struct ConsultSimulation::Listener {
  std::unique_ptr<refclient::Connection> conn;
  std::unique_ptr<refclient::Subscriber> sub;
  std::thread thread;
};

ConsultSimulation::ConsultSimulation(const SimOptions& options,
                                     const refbroker::auth::Registry& registry)
    : o_(options), registry_(registry) {}

ConsultSimulation::~ConsultSimulation() { Stop(); }

void ConsultSimulation::Listen(const Principal& who, v1::QueueKind kind, const std::string& group,
                               uint32_t window, refclient::Subscriber::Handler handle) {
  auto l = std::make_unique<Listener>();
  l->conn = Connect(o_, who.cert);
  refclient::SubscriberOptions so;
  so.queue.set_owner(who.id);
  so.queue.set_kind(kind);
  so.group = group;
  so.window = window;
  l->sub = std::make_unique<refclient::Subscriber>(*l->conn, so);
  l->thread = std::thread([sub = l->sub.get(), handle] {
    absl::Status s = sub->Run(handle);
    if (!s.ok()) std::cerr << "\nrefsim: consult subscriber stopped: " << s.message() << "\n";
  });
  listeners_.push_back(std::move(l));
}

// A reading station takes one consult from the worklist: accepts, writes on the thread,
// reports; then acks it (a crash before that gives it to the other station).
refclient::Decision ConsultSimulation::Read(const Principal& at, const v1::Delivery& d,
                                            int station) {
  const v1::Consult& c = d.consult();
  static thread_local std::unique_ptr<refclient::Connection> conn;
  static thread_local std::string conn_for;
  if (!conn || conn_for != at.cert) {
    conn = Connect(o_, at.cert);
    conn_for = at.cert;
  }
  refclient::ConsultClient client(*conn);
  std::mt19937_64 rng(std::hash<std::string>()(c.id()));
  std::string doctor_id = "R" + std::to_string(station);
  v1::TransitionConsultRequest accept;
  accept.set_consult_id(c.id());
  accept.set_client_request_id(c.id() + "-accept");
  accept.mutable_doctor()->set_id(doctor_id);
  accept.mutable_doctor()->set_name(station == 1 ? "刘医生" : "赵医生");
  accept.mutable_accept()->set_note("reading station " + std::to_string(station));
  auto accepted = client.Transition(accept);
  if (!accepted.ok()) {
    if (!absl::IsFailedPrecondition(accepted.status())) tally_.step_errors++;
    return refclient::Decision::Ack();  // cancelled meanwhile, or taken already
  }
  if (!accepted->duplicate()) tally_.accepted++;
  v1::ConsultMessage m;
  m.set_consult_id(c.id());
  m.set_client_request_id(c.id() + "-note");
  m.mutable_author()->mutable_doctor()->set_id(doctor_id);
  m.mutable_author()->mutable_doctor()->set_name(accept.doctor().name());
  m.set_text("已接收，正在判读。");
  if (client.Post(m).ok()) tally_.messages++;
  v1::IssueReportRequest report;
  report.set_consult_id(c.id());
  report.set_client_request_id(c.id() + "-report");
  auto* content = report.mutable_content();
  content->set_findings(c.target().service() == v1::ECG_READING ? "窦性心律，ST-T改变"
                                                                : "未见明显异常征象");
  content->set_opinion(c.priority() == v1::EMERGENCY ? "建议立即上转" : "建议基层随访");
  content->set_recommendations("结合临床");
  *content->mutable_consultant() = accept.doctor();
  AddReading(c.target().service(), *content, rng);
  auto issued = client.IssueReport(report);
  if (!issued.ok()) {
    tally_.step_errors++;
    std::cerr << "\nrefsim: report refused: " << issued.status().message() << "\n";
    return refclient::Decision::Ack();
  }
  if (!issued->duplicate()) {
    tally_.reported++;
    if (!issued->report().result_id().empty()) tally_.readings++;
  }
  return refclient::Decision::Ack();
}

refclient::Decision ConsultSimulation::Receive(const v1::Delivery& d) {
  const auto& u = d.consult_update();
  if (!u.has_report() || !u.report().content().addendum_to().empty()) {
    return refclient::Decision::Ack();
  }
  if (!refclient::VerifyReportDigest(u.report())) tally_.digests_bad++;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(u.consult_id());
  if (it != open_.end()) {
    tally_.reports_received++;
    tally_.turnaround_ms_total += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - it->second)
            .count());
    open_.erase(it);
  }
  return refclient::Decision::Ack();
}

void ConsultSimulation::RunClinic(const Principal& clinic, SteadyClock::time_point end,
                                  double per_clinic, uint64_t seed) {
  std::vector<std::pair<const Principal*, v1::ConsultServiceType>> targets;
  for (const auto& p : registry_.principals()) {
    if (p.alliance != clinic.alliance) continue;
    if (Offers(p, "ECG_READING")) targets.insert(targets.end(), 6, {&p, v1::ECG_READING});
    if (Offers(p, "IMAGING_READING")) targets.insert(targets.end(), 3, {&p, v1::IMAGING_READING});
    if (p.role == Role::kHospital && p.lead) targets.push_back({&p, v1::SPECIALTY_OPINION});
  }
  if (targets.empty()) return;
  auto conn = Connect(o_, clinic.cert);
  refclient::ConsultClient client(*conn);
  SyntheticReferrals gen(seed);
  auto interval = std::chrono::duration<double>(1.0 / std::max(per_clinic, 0.01));
  auto next = SteadyClock::now() +
              std::chrono::duration_cast<SteadyClock::duration>(interval * (seed % 7) / 7.0);
  for (uint64_t n = 0; next < end; ++n) {
    std::this_thread::sleep_until(next);
    next += std::chrono::duration_cast<SteadyClock::duration>(interval);
    auto [target, service] = targets[gen.rng()() % targets.size()];
    std::string specialty;
    if (service == v1::SPECIALTY_OPINION) {
      specialty = target->specialties.empty() ? "" : target->specialties[0];
    }
    auto consult =
        gen.MakeConsult(clinic.id, target->id, service, specialty, gen.RandomPriority(),
                        clinic.cert + "-con-" + std::to_string(seed) + "-" + std::to_string(n));
    RecordPatient(o_, consult.patient());
    tally_.requested++;
    auto out = client.Request(consult);
    if (out.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      open_[out->consult().id()] = SteadyClock::now();
    } else if (refclient::IsRetryable(out.status())) {
      tally_.failed++;
    } else {
      tally_.rejected++;
      std::cerr << "\nrefsim: consult rejected: " << out.status().message() << "\n";
    }
  }
}

void ConsultSimulation::Start(SteadyClock::time_point end) {
  std::vector<const Principal*> clinics;
  for (const auto& p : registry_.principals()) {
    bool consulted = Offers(p, "ECG_READING") || Offers(p, "IMAGING_READING") ||
                     (p.role == Role::kHospital && p.lead);
    if (consulted) {
      for (int station = 1; station <= 2; ++station) {
        Listen(p, v1::CONSULTS, "reading-stations", 1,
               [this, &p, station](const v1::Delivery& d) { return Read(p, d, station); });
      }
      Listen(p, v1::CONSULT_UPDATES, o_.group, o_.window,
             [](const v1::Delivery&) { return refclient::Decision::Ack(); });
    }
    if (p.role == Role::kClinic) clinics.push_back(&p);
  }
  for (const Principal* c : clinics) {
    Listen(*c, v1::CONSULT_UPDATES, o_.group, o_.window,
           [this](const v1::Delivery& d) { return Receive(d); });
  }
  for (size_t i = 0; i < clinics.size(); ++i) {
    double rate = o_.consult_rate / static_cast<double>(clinics.size());
    clinics_.emplace_back(
        [this, c = clinics[i], end, rate, i] { RunClinic(*c, end, rate, o_.seed * 97 + i); });
  }
}

bool ConsultSimulation::Done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_.empty();
}

void ConsultSimulation::Stop() {
  for (auto& t : clinics_) t.join();
  clinics_.clear();
  for (auto& l : listeners_) l->sub->Stop();
  for (auto& l : listeners_) l->thread.join();
  listeners_.clear();
}

void ConsultSimulation::PrintSummary() const {
  auto u = [](const std::atomic<uint64_t>& v) { return static_cast<unsigned long long>(v.load()); };
  uint64_t received = tally_.reports_received.load();
  std::printf(
      "teleconsultation and remote reading:\n"
      "  consults requested %llu (rejected %llu, failed %llu)  accepted %llu  reported %llu\n"
      "  readings published as results %llu  thread messages %llu\n"
      "  reports received by the townships %llu (digest mismatches %llu)  mean turnaround "
      "%.0f ms\n",
      u(tally_.requested), u(tally_.rejected), u(tally_.failed), u(tally_.accepted),
      u(tally_.reported), u(tally_.readings), u(tally_.messages), u(tally_.reports_received),
      u(tally_.digests_bad),
      received ? static_cast<double>(tally_.turnaround_ms_total.load()) / received : 0.0);
}

}  // namespace refsim

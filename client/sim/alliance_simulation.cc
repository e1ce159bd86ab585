#include "client/sim/alliance_simulation.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "client/refclient/connection.h"
#include "client/refclient/referral_client.h"
#include "client/refclient/result_client.h"
#include "client/refclient/subscriber.h"
#include "client/sim/consult_simulation.h"
#include "client/sim/synthetic_referral.h"
#include "google/protobuf/util/time_util.h"

namespace refsim {
namespace {

namespace v1 = refbroker::v1;
using refbroker::auth::Principal;
using SteadyClock = std::chrono::steady_clock;
using Tally = AllianceSimulation::Tally;

std::unique_ptr<refclient::Connection> Connect(const SimOptions& o, const std::string& stem) {
  return ConnectOrExit(o, stem);
}

v1::TransitionReferralRequest Step(const std::string& id, const std::string& request_id,
                                   const std::string& doctor) {
  v1::TransitionReferralRequest r;
  r.set_referral_id(id);
  r.set_client_request_id(request_id);
  r.mutable_doctor()->set_id("D-" + std::to_string(std::hash<std::string>()(doctor) % 9000));
  r.mutable_doctor()->set_name(doctor);
  return r;
}

// A fasting glucose result of the referral's patient, performed an hour ago.
v1::ResultRecord GlucoseFor(const v1::Referral& r, const std::string& performer,
                            const std::string& to, const std::string& request_id, int hours_ago) {
  using google::protobuf::util::TimeUtil;
  v1::ResultRecord res;
  res.set_client_request_id(request_id);
  res.set_kind(v1::LAB);
  *res.mutable_patient() = r.patient();
  res.set_performing_institution(performer);
  res.set_addressed_to(to);
  res.set_item_code("LAB-GLU");
  res.set_item_name("空腹血糖");
  *res.mutable_performed_at() = TimeUtil::GetCurrentTime() - TimeUtil::HoursToDuration(hours_ago);
  auto* v = res.add_lab_values();
  v->set_analyte("GLU");
  v->set_value("7.2");
  v->set_unit("mmol/L");
  v->set_reference_range("3.9-6.1");
  v->set_abnormal_flag("H");
  res.set_conclusion("空腹血糖偏高");
  return res;
}

refclient::SubscriberOptions QueueOptions(const SimOptions& o, const std::string& owner,
                                          v1::QueueKind kind) {
  refclient::SubscriberOptions so;
  so.queue.set_owner(owner);
  so.queue.set_kind(kind);
  so.group = o.group;
  so.window = o.window;
  return so;
}

// A county hospital's referral office: decides on each inbound referral on a few worker
// threads, as staff would, and continues completed ones back down.
class Office {
 public:
  Office(const SimOptions& o, const Principal& hospital, Tally& tally, uint64_t seed)
      : o_(o),
        hospital_(hospital),
        tally_(tally),
        conn_(Connect(o, hospital.cert)),
        client_(*conn_),
        seed_(seed) {
    for (int i = 0; i < 4; ++i) workers_.emplace_back([this, i] { Work(seed_ + i); });
  }
  ~Office() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  void Take(const v1::Referral& r) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(r);
    cv_.notify_one();
  }
  bool Idle() {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.empty() && busy_ == 0;
  }

 private:
  void Work(uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (;;) {
      v1::Referral r;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        r = std::move(queue_.front());
        queue_.pop_front();
        busy_++;
      }
      Handle(r, rng);
      std::lock_guard<std::mutex> lock(mu_);
      busy_--;
    }
  }

  bool Do(v1::TransitionReferralRequest req, std::atomic<uint64_t>& counter) {
    auto out = client_.Transition(req);
    if (out.ok()) {
      counter++;
      return true;
    }
    if (!absl::IsFailedPrecondition(out.status())) tally_.transition_errors++;
    return false;  // e.g. cancelled by the township meanwhile, or re-routed away
  }

  void Pause() { std::this_thread::sleep_for(std::chrono::milliseconds(o_.step_ms)); }

  void Handle(const v1::Referral& r, std::mt19937_64& rng) {
    if (r.direction() != v1::UP) return;
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    const std::string key = hospital_.cert + "-" + r.id();
    Pause();
    if (u < o_.ignore_share) return;  // nobody decides: the deadline will pass
    if (u < o_.ignore_share + o_.decline_share) {
      auto req = Step(r.id(), key + "-decline", "王主任");
      req.mutable_decline()->set_reason(
          u < o_.ignore_share + o_.decline_share / 2 ? v1::NO_CAPACITY : v1::OUTSIDE_SERVICES);
      req.mutable_decline()->set_text("床位已满，建议转中心医院");
      Do(req, tally_.declined);
      return;
    }
    auto accept = Step(r.id(), key + "-accept", "王主任");
    accept.mutable_accept()->set_note("已安排床位");
    if (!Do(accept, tally_.accepted)) return;
    Retest(r, key, rng);
    Pause();
    auto arrive = Step(r.id(), key + "-arrive", "护士站");
    arrive.mutable_arrive();
    if (!Do(arrive, tally_.arrived)) return;
    Pause();
    auto complete = Step(r.id(), key + "-complete", "王主任");
    complete.mutable_complete()->set_outcome_summary("治疗结束，病情稳定");
    if (!Do(complete, tally_.completed)) return;
    if (std::uniform_real_distribution<double>(0, 1)(rng) < o_.down_share) ReferDown(r);
  }

  // For each recognizable attached result: sometimes test again, with or without a reason.
  void Retest(const v1::Referral& r, const std::string& key, std::mt19937_64& rng) {
    refclient::ResultClient results(*conn_);
    for (const auto& verdict : r.attached_result_verdicts()) {
      tally_.verdicts++;
      if (!verdict.recognizable()) continue;
      tally_.recognizable++;
      double u = std::uniform_real_distribution<double>(0, 1)(rng);
      if (u >= o_.retest_share + o_.repeat_share) continue;
      if (u < o_.retest_share) {
        v1::Retest rt;
        rt.set_client_request_id(key + "-retest-" + verdict.result_id());
        *rt.mutable_patient() = r.patient().identifiers(0);
        rt.set_item_code(verdict.item_code());
        rt.set_reason(v1::RETEST_CRITICAL_STEP);
        rt.set_text("术前复查");
        rt.mutable_doctor()->set_id("D-3001");
        rt.mutable_doctor()->set_name("王主任");
        rt.set_prior_result_id(verdict.result_id());
        if (!results.RecordRetest(rt).ok()) {
          tally_.transition_errors++;
          continue;
        }
      }
      auto again =
          results.Publish(GlucoseFor(r, hospital_.id, "", key + "-lis-" + verdict.result_id(), 0));
      if (!again.ok()) {
        tally_.transition_errors++;
        continue;
      }
      tally_.results_published++;
      if (again->result().repeat_without_reason()) tally_.repeats_without_reason++;
      if (!again->result().retest_id().empty()) tally_.retests++;
    }
  }

  void ReferDown(const v1::Referral& up) {
    v1::Referral down;
    down.set_client_request_id(hospital_.cert + "-" + up.id() + "-down");
    down.set_direction(v1::DOWN);
    down.set_priority(v1::ROUTINE);
    *down.mutable_patient() = up.patient();
    down.mutable_from()->set_institution(hospital_.id);
    down.mutable_from()->set_department("康复科");
    down.mutable_from()->mutable_doctor()->set_id("D-2001");
    down.mutable_from()->mutable_doctor()->set_name("赵医生");
    down.set_reason("病情稳定，转回基层继续康复");
    *down.mutable_diagnoses() = up.diagnoses();
    *down.mutable_consent() = up.consent();
    down.set_continues_referral_id(up.id());
    down.set_down_reason(v1::REHABILITATION);
    down.set_follow_up_plan("按时服药；两周后乡镇卫生院随访");
    auto out = client_.Submit(down);
    if (out.ok())
      tally_.down_sent++;
    else
      tally_.transition_errors++;
  }

  const SimOptions& o_;
  const Principal& hospital_;
  Tally& tally_;
  std::unique_ptr<refclient::Connection> conn_;
  refclient::ReferralClient client_;
  uint64_t seed_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::Referral> queue_;
  int busy_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// A subscriber running on its own thread.
struct Listener {
  std::unique_ptr<refclient::Connection> conn;
  std::unique_ptr<refclient::Subscriber> sub;
  std::thread thread;
};

void RunClinic(const SimOptions& o, const Principal& clinic,
               const std::vector<std::string>& hospitals, double rate, SteadyClock::time_point end,
               uint64_t seed, Tally& tally) {
  auto conn = Connect(o, clinic.cert);
  refclient::ReferralClient client(*conn);
  refclient::ResultClient results(*conn);
  SyntheticReferrals gen(seed);
  auto interval = std::chrono::duration<double>(1.0 / rate);
  auto next = SteadyClock::now();
  for (uint64_t n = 0; SteadyClock::now() < end; ++n) {
    std::string request_id = clinic.cert + "-" + std::to_string(seed) + "-" + std::to_string(n);
    auto referral = gen.Make(clinic.id, hospitals[gen.rng()() % hospitals.size()],
                             gen.RandomPriority(), request_id);
    RecordPatient(o, referral.patient());
    if (o.journeys && std::uniform_real_distribution<double>(0, 1)(gen.rng()) < o.result_share) {
      auto published = results.Publish(
          GlucoseFor(referral, clinic.id, referral.to_institution(), request_id + "-lis", 1));
      if (published.ok()) {
        tally.results_published++;
        referral.add_attached_result_ids(published->result().id());
      }
    }
    tally.sent++;
    auto r = client.Submit(referral);
    if (r.ok()) {
      tally.acked++;
      std::lock_guard<std::mutex> lock(tally.mu);
      tally.acked_ids.insert(r->referral().id());
    } else if (refclient::IsRetryable(r.status())) {
      tally.failed++;
    } else {
      tally.rejected++;
      std::cerr << "\nrefsim: rejected: " << r.status().message() << "\n";
    }
    if (r.ok() && o.journeys &&
        std::uniform_real_distribution<double>(0, 1)(gen.rng()) < o.cancel_share) {
      auto cancel = Step(r->referral().id(), request_id + "-cancel", "刘医生");
      cancel.mutable_cancel()->set_reason("患者选择就近就医");
      auto c = client.Transition(cancel);
      if (c.ok())
        tally.cancelled++;
      else if (absl::IsFailedPrecondition(c.status()))
        tally.cancel_too_late++;
      else
        tally.transition_errors++;
    }
    next += std::chrono::duration_cast<SteadyClock::duration>(interval);
    std::this_thread::sleep_until(next);
  }
}

}  // namespace

void RecordPatient(const SimOptions& o, const refbroker::v1::Patient& patient) {
  if (o.patients_out.empty()) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::ofstream out(o.patients_out, std::ios::app);
  out << patient.name();
  for (const auto& id : patient.identifiers()) out << "\t" << id.value();
  out << "\t" << patient.phone() << "\n";
}

std::unique_ptr<refclient::Connection> ConnectOrExit(const SimOptions& o, const std::string& stem) {
  auto conn = refclient::Connection::Create(refclient::CertDirOptions(o.brokers, o.certs, stem));
  if (!conn.ok()) {
    std::cerr << "refsim: " << conn.status().message() << "\n";
    std::exit(2);
  }
  return std::move(*conn);
}

uint64_t AllianceSimulation::Tally::Lost() {
  std::lock_guard<std::mutex> lock(mu);
  uint64_t lost = 0;
  for (const auto& id : acked_ids) lost += delivered_ids.count(id) ? 0 : 1;
  return lost;
}

AllianceSimulation::AllianceSimulation(SimOptions options,
                                       const refbroker::auth::Registry& registry)
    : o_(std::move(options)), registry_(registry) {}

namespace {

void Progress(double t, Tally& tally, bool final_line) {
  static const bool tty = isatty(fileno(stderr));
  static double last_logged = -10;
  if (!tty && !final_line && t - last_logged < 5) return;
  last_logged = t;
  std::lock_guard<std::mutex> lock(tally.mu);
  std::fprintf(stderr,
               "%s[%5.1fs] sent %llu  acked %llu  delivered %zu  accepted %llu  completed %llu  "
               "down %llu  errors %llu   %s",
               tty ? "\r" : "", t, static_cast<unsigned long long>(tally.sent.load()),
               static_cast<unsigned long long>(tally.acked.load()), tally.delivered_ids.size(),
               static_cast<unsigned long long>(tally.accepted.load()),
               static_cast<unsigned long long>(tally.completed.load()),
               static_cast<unsigned long long>(tally.down_sent.load()),
               static_cast<unsigned long long>(tally.failed + tally.rejected),
               final_line || !tty ? "\n" : "");
  std::fflush(stderr);
}

void PrintSummary(const SimOptions& o, size_t clinics, size_t hospitals, Tally& t, uint64_t lost) {
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::lock_guard<std::mutex> lock(t.mu);
  unsigned long long escalated = u(t.township_updates[v1::ESCALATE]);
  if (o.json) {
    std::printf(
        "{\"sent\":%llu,\"acknowledged\":%llu,\"delivered\":%llu,\"lost\":%llu,"
        "\"redeliveries\":%llu,\"refused\":%llu,\"rejected\":%llu,\"failed\":%llu,"
        "\"accepted\":%llu,\"declined\":%llu,\"completed\":%llu,\"cancelled\":%llu,"
        "\"escalated\":%llu,\"down_sent\":%llu,\"down_accepted\":%llu,\"loops_closed\":%llu}\n",
        u(t.sent), u(t.acked), u(t.delivered_ids.size()), u(lost),
        u(t.deliveries - t.delivered_ids.size()), u(t.refused_ids.size()), u(t.rejected),
        u(t.failed), u(t.accepted), u(t.declined), u(t.completed), u(t.cancelled), escalated,
        u(t.down_sent), u(t.down_accepted), u(t.loops_closed.size()));
    return;
  }
  std::printf("refsim summary: %zu clinics -> %zu county hospitals, %.0f s at %.1f/s\n", clinics,
              hospitals, o.duration, o.rate);
  std::printf(
      "  sent          %llu\n"
      "  acknowledged  %llu  (durable in the broker)\n"
      "  delivered     %llu  (reached a county hospital's system)\n"
      "  lost          %llu  (acknowledged but never delivered)\n"
      "  redeliveries  %llu\n"
      "  refused       %llu  (nacked by the hospital: retried, then dead letters)\n"
      "  rejected      %llu  (invalid)\n"
      "  failed        %llu  (transient, after retries)\n",
      u(t.sent), u(t.acked), u(t.delivered_ids.size()), u(lost),
      u(t.deliveries - t.delivered_ids.size()), u(t.refused_ids.size()), u(t.rejected),
      u(t.failed));
  if (!o.journeys) return;
  std::printf(
      "journeys:\n"
      "  accepted %llu  declined %llu  cancelled %llu (too late %llu)  escalated %llu\n"
      "  arrived %llu  completed %llu  loops closed at the township %llu\n"
      "  down legs %llu (accepted by the township %llu)  transition errors %llu\n",
      u(t.accepted), u(t.declined), u(t.cancelled), u(t.cancel_too_late), escalated, u(t.arrived),
      u(t.completed), u(t.loops_closed.size()), u(t.down_sent), u(t.down_accepted),
      u(t.transition_errors));
  std::printf(
      "results and mutual recognition:\n"
      "  results published %llu  verdicts stamped %llu (recognizable %llu)\n"
      "  re-tests with a recorded reason %llu  repeats without reason %llu\n",
      u(t.results_published), u(t.verdicts), u(t.recognizable), u(t.retests),
      u(t.repeats_without_reason));
}

}  // namespace

int AllianceSimulation::Run() {
  std::vector<const Principal*> clinics, hospitals;
  std::vector<std::string> hospital_codes;
  for (const auto& p : registry_.principals()) {
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
  Tally& t = tally_;
  std::vector<std::unique_ptr<Office>> offices;
  std::vector<std::unique_ptr<Listener>> listeners;
  auto listen = [&](const Principal& who, v1::QueueKind kind, refclient::Subscriber::Handler h) {
    auto l = std::make_unique<Listener>();
    l->conn = Connect(o_, who.cert);
    l->sub = std::make_unique<refclient::Subscriber>(*l->conn, QueueOptions(o_, who.id, kind));
    l->thread = std::thread([sub = l->sub.get(), h] {
      absl::Status s = sub->Run(h);
      if (!s.ok()) std::cerr << "\nrefsim: subscriber stopped: " << s.message() << "\n";
    });
    listeners.push_back(std::move(l));
  };
  if (o_.subscribe) {
    for (size_t i = 0; i < hospitals.size(); ++i) {
      Office* office = nullptr;
      if (o_.journeys) {
        offices.push_back(std::make_unique<Office>(o_, *hospitals[i], t, o_.seed * 31 + i));
        office = offices.back().get();
      }
      listen(*hospitals[i], v1::REFERRALS, [this, office](const v1::Delivery& d) {
        {
          std::lock_guard<std::mutex> lock(tally_.mu);
          tally_.deliveries++;
          tally_.delivered_ids.insert(d.referral().id());
          if (std::hash<std::string>()(d.referral().id()) % 10000 < o_.refuse_share * 10000) {
            tally_.refused_ids.insert(d.referral().id());
            return refclient::Decision::Nack("HIS: department code not mapped");
          }
        }
        if (office != nullptr && d.attempt() == 1) office->Take(d.referral());
        return refclient::Decision::Ack();
      });
      if (o_.journeys) {  // the hospital's systems also take their updates and results
        for (auto kind : {v1::REFERRAL_UPDATES, v1::RESULTS}) {
          listen(*hospitals[i], kind,
                 [](const v1::Delivery&) { return refclient::Decision::Ack(); });
        }
      }
    }
    for (const Principal* c : clinics) {
      if (!o_.journeys) break;
      listen(*c, v1::REFERRAL_UPDATES, [this](const v1::Delivery& d) {
        std::lock_guard<std::mutex> lock(tally_.mu);
        tally_.township_updates[d.referral_update().event().action()]++;
        if (d.referral_update().event().action() == v1::COMPLETE &&
            d.referral_update().direction() == v1::UP) {
          tally_.loops_closed.insert(d.referral_update().referral_id());
        }
        return refclient::Decision::Ack();
      });
      auto down_conn = std::shared_ptr<refclient::Connection>(Connect(o_, c->cert));
      listen(*c, v1::REFERRALS, [this, c, down_conn](const v1::Delivery& d) {
        refclient::ReferralClient client(*down_conn);
        auto accept =
            Step(d.referral().id(), c->cert + "-" + d.referral().id() + "-accept", "陈医生");
        accept.mutable_accept();
        if (client.Transition(accept).ok()) {
          tally_.down_accepted++;
          auto arrive =
              Step(d.referral().id(), c->cert + "-" + d.referral().id() + "-arrive", "陈医生");
          arrive.mutable_arrive();
          (void)client.Transition(arrive);
        }
        return refclient::Decision::Ack();
      });
    }
  }

  auto start = SteadyClock::now();
  auto end = start + std::chrono::duration_cast<SteadyClock::duration>(
                         std::chrono::duration<double>(o_.duration));
  std::unique_ptr<ConsultSimulation> consults;
  if (o_.subscribe && o_.journeys && o_.consult_rate > 0) {
    consults = std::make_unique<ConsultSimulation>(o_, registry_);
    consults->Start(end);
  }
  std::vector<std::thread> clinic_threads;
  for (size_t i = 0; i < clinics.size(); ++i) {
    clinic_threads.emplace_back(RunClinic, std::cref(o_), std::cref(*clinics[i]),
                                std::cref(hospital_codes), o_.rate / clinics.size(), end,
                                o_.seed + i, std::ref(t));
  }
  auto elapsed = [&] { return std::chrono::duration<double>(SteadyClock::now() - start).count(); };
  while (SteadyClock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    Progress(elapsed(), t, false);
  }
  for (auto& th : clinic_threads) th.join();
  auto drain_end = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                            std::chrono::duration<double>(o_.drain));
  auto busy = [&] {
    for (auto& off : offices) {
      if (!off->Idle()) return true;
    }
    return consults != nullptr && !consults->Done();
  };
  while (o_.subscribe && (t.Lost() > 0 || busy()) && SteadyClock::now() < drain_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    Progress(elapsed(), t, false);
  }
  if (o_.journeys && o_.subscribe) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Progress(elapsed(), t, true);
  for (auto& l : listeners) l->sub->Stop();
  for (auto& l : listeners) l->thread.join();
  offices.clear();
  if (consults) consults->Stop();

  uint64_t lost = o_.subscribe ? t.Lost() : 0;
  PrintSummary(o_, clinics.size(), hospitals.size(), t, lost);
  if (consults && !o_.json) consults->PrintSummary();
  return lost == 0 && t.rejected == 0 ? 0 : 1;
}

}  // namespace refsim

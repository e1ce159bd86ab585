#include "broker/report/alliance_report.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <set>

#include "broker/common/status_macros.h"
#include "refbroker/v1/result.pb.h"

namespace refbroker::report {
namespace {

using google::protobuf::util::TimeUtil;
namespace v1 = refbroker::v1;

constexpr double kMicrosPerMinute = 60.0 * 1000000.0;
constexpr Micros kChinaOffset = 8LL * 3600 * 1000000;  // the alliance's calendar day (UTC+8)

struct Tally {
  v1::InstitutionFigures figures;
  std::vector<double> acceptance;
  std::map<std::string, uint64_t> declines;
  std::map<std::string, uint64_t> retests;
};

std::string Day(Micros at) {
  std::time_t t = static_cast<std::time_t>((at + kChinaOffset) / 1000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

void PutReasons(const std::map<std::string, uint64_t>& counts,
                google::protobuf::RepeatedPtrField<v1::ReasonCount>* out) {
  for (const auto& [reason, n] : counts) {
    v1::ReasonCount* rc = out->Add();
    rc->set_reason(reason);
    rc->set_count(n);
  }
}

double Ratio(uint64_t num, uint64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

int LevelOrder(auth::Level level) {
  switch (level) {
    case auth::Level::kCity:
      return 0;
    case auth::Level::kCounty:
      return 1;
    case auth::Level::kTownship:
      return 2;
  }
  return 3;
}

void CountVerdicts(const google::protobuf::RepeatedPtrField<v1::RecognitionVerdict>& verdicts,
                   v1::InstitutionFigures& f) {
  for (const auto& v : verdicts) {
    f.set_results_attached(f.results_attached() + 1);
    if (v.recognizable()) f.set_results_recognizable(f.results_recognizable() + 1);
  }
}

}  // namespace

v1::Percentiles PercentilesOf(std::vector<double> samples) {
  v1::Percentiles p;
  p.set_count(samples.size());
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  auto rank = [&samples](double q) {
    size_t k = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
    return samples[std::max<size_t>(k, 1) - 1];
  };
  p.set_p50_minutes(rank(0.5));
  p.set_p90_minutes(rank(0.9));
  return p;
}

v1::AllianceReport BuildAllianceReport(const auth::Registry& registry, const ReportInput& in) {
  v1::AllianceReport report;
  report.set_alliance(in.alliance);
  if (const auth::Alliance* a = registry.FindAlliance(in.alliance)) {
    report.set_alliance_name(a->name);
  }
  *report.mutable_from() = TimeUtil::MicrosecondsToTimestamp(in.from);
  *report.mutable_to() = TimeUtil::MicrosecondsToTimestamp(in.to);

  std::map<std::string, Tally> tally;  // the alliance's institutions
  std::vector<const auth::Principal*> members;
  for (const auth::Principal& p : registry.principals()) {
    if (p.alliance != in.alliance || !p.IsInstitution()) continue;
    members.push_back(&p);
    Tally& t = tally[p.id];
    t.figures.set_institution(p.id);
    t.figures.set_name(p.name);
    t.figures.set_level(auth::LevelName(p.level));
  }
  auto at = [&tally](const std::string& id) -> Tally* {
    auto it = tally.find(id);
    return it == tally.end() ? nullptr : &it->second;
  };
  Tally total;
  total.figures.set_institution(in.alliance);
  total.figures.set_name(report.alliance_name());
  total.figures.set_level("ALLIANCE");
  std::vector<double> all_acceptance;

  // Journeys that have a down leg, for loops closed.
  std::set<std::string> journeys_with_down;
  for (const ReferralFacts& r : in.referrals) {
    if (r.record.direction == v1::DOWN) journeys_with_down.insert(r.record.journey_id);
  }
  // (township, county) → traffic; flows per day and township.
  std::map<std::pair<std::string, std::string>, v1::Partnership> pairs;
  std::map<std::pair<std::string, std::string>, v1::DailyFlow> flows;

  for (const ReferralFacts& r : in.referrals) {
    const storage::ReferralRecord& rec = r.record;
    bool up = rec.direction == v1::UP;
    Tally* sender = at(rec.sender);
    Tally* receiver = at(rec.receiver);
    auto& tf = total.figures;
    if (up) {
      tf.set_up_sent(tf.up_sent() + 1);
      if (receiver) tf.set_up_received(tf.up_received() + 1);
      if (sender) sender->figures.set_up_sent(sender->figures.up_sent() + 1);
      if (receiver) receiver->figures.set_up_received(receiver->figures.up_received() + 1);
    } else {
      tf.set_down_sent(tf.down_sent() + 1);
      if (receiver) tf.set_down_received(tf.down_received() + 1);
      if (sender) sender->figures.set_down_sent(sender->figures.down_sent() + 1);
      if (receiver) receiver->figures.set_down_received(receiver->figures.down_received() + 1);
    }
    const std::string& township = up ? rec.sender : rec.receiver;
    const std::string& county = up ? rec.receiver : rec.sender;
    auto& pair = pairs[{township, county}];
    up ? pair.set_up(pair.up() + 1) : pair.set_down(pair.down() + 1);
    auto& flow = flows[{Day(rec.submitted_at), township}];
    up ? flow.set_up(flow.up() + 1) : flow.set_down(flow.down() + 1);

    bool closed = up && journeys_with_down.count(rec.journey_id) > 0;
    for (const v1::ReferralEvent& e : r.events) {
      Micros when = TimeUtil::TimestampToMicroseconds(e.at());
      Tally* actor = at(e.actor().institution());
      switch (e.action()) {
        case v1::ACCEPT: {
          double minutes = static_cast<double>(when - rec.submitted_at) / kMicrosPerMinute;
          tf.set_accepted(tf.accepted() + 1);
          all_acceptance.push_back(minutes);
          if (actor) {
            actor->figures.set_accepted(actor->figures.accepted() + 1);
            actor->acceptance.push_back(minutes);
          }
          break;
        }
        case v1::DECLINE: {
          std::string reason = v1::DeclineReason_Name(e.decline_reason());
          tf.set_declined(tf.declined() + 1);
          total.declines[reason]++;
          if (actor) {
            actor->figures.set_declined(actor->figures.declined() + 1);
            actor->declines[reason]++;
          }
          break;
        }
        case v1::COMPLETE:
          if (up) closed = true;
          break;
        case v1::ESCALATE: {
          tf.set_deadline_breaches(tf.deadline_breaches() + 1);
          Tally* due = at(e.rerouted_from().empty() ? rec.receiver : e.rerouted_from());
          if (due) due->figures.set_deadline_breaches(due->figures.deadline_breaches() + 1);
          break;
        }
        default:
          break;
      }
    }
    if (closed) {
      tf.set_loops_closed(tf.loops_closed() + 1);
      if (sender) sender->figures.set_loops_closed(sender->figures.loops_closed() + 1);
    }
    CountVerdicts(r.body.attached_result_verdicts(), tf);
    if (receiver) CountVerdicts(r.body.attached_result_verdicts(), receiver->figures);
  }

  std::map<int, std::vector<double>> turnaround;  // service → minutes
  std::map<int, v1::ServiceTurnaround> services;
  for (const ConsultFacts& c : in.consults) {
    const storage::ConsultRecord& rec = c.record;
    auto& tf = total.figures;
    tf.set_consults_requested(tf.consults_requested() + 1);
    Tally* requester = at(rec.requester);
    Tally* target = at(rec.target);
    if (requester) {
      requester->figures.set_consults_requested(requester->figures.consults_requested() + 1);
    }
    if (target) {
      target->figures.set_consults_received(target->figures.consults_received() + 1);
      tf.set_consults_received(tf.consults_received() + 1);
    }
    auto& svc = services[rec.service];
    svc.set_service(v1::ConsultServiceType_Name(static_cast<v1::ConsultServiceType>(rec.service)));
    svc.set_requested(svc.requested() + 1);
    // A township asking a county institution (or the reverse) is traffic of that partnership.
    const auth::Principal* rp = registry.Find(rec.requester);
    const auth::Principal* tp = registry.Find(rec.target);
    if (rp && tp &&
        (rp->level == auth::Level::kTownship) != (tp->level == auth::Level::kTownship)) {
      auto& pair = rp->level == auth::Level::kTownship ? pairs[{rec.requester, rec.target}]
                                                       : pairs[{rec.target, rec.requester}];
      pair.set_consults(pair.consults() + 1);
    }
    bool reported = false;
    for (const v1::ConsultEvent& e : c.events) {
      Micros when = TimeUtil::TimestampToMicroseconds(e.at());
      if (e.action() == v1::CONSULT_REPORT && !reported) {
        reported = true;
        double minutes = static_cast<double>(when - rec.requested_at) / kMicrosPerMinute;
        turnaround[rec.service].push_back(minutes);
        svc.set_reported(svc.reported() + 1);
        tf.set_consults_reported(tf.consults_reported() + 1);
        if (target) target->figures.set_consults_reported(target->figures.consults_reported() + 1);
      } else if (e.action() == v1::CONSULT_ESCALATE) {
        tf.set_deadline_breaches(tf.deadline_breaches() + 1);
        if (target) target->figures.set_deadline_breaches(target->figures.deadline_breaches() + 1);
      }
    }
    CountVerdicts(c.body.attached_result_verdicts(), tf);
    if (target) CountVerdicts(c.body.attached_result_verdicts(), target->figures);
  }
  for (auto& [service, s] : services) {
    std::vector<double> samples = turnaround[service];
    std::sort(samples.begin(), samples.end());
    *s.mutable_turnaround() = PercentilesOf(samples);
    for (double m : samples) s.add_samples_minutes(m);
    *report.add_consult_turnaround() = s;
  }

  for (const storage::RetestCountRow& row : in.retests) {
    Tally* t = at(row.institution);
    if (!t) continue;
    if (row.reason == 0) {
      t->figures.set_repeats_without_reason(t->figures.repeats_without_reason() + row.count);
      total.figures.set_repeats_without_reason(total.figures.repeats_without_reason() + row.count);
    } else {
      std::string reason = v1::RetestReason_Name(static_cast<v1::RetestReason>(row.reason));
      t->retests[reason] += row.count;
      total.retests[reason] += row.count;
    }
  }

  auto finish = [](Tally& t) {
    v1::InstitutionFigures& f = t.figures;
    *f.mutable_acceptance() = PercentilesOf(t.acceptance);
    PutReasons(t.declines, f.mutable_decline_reasons());
    PutReasons(t.retests, f.mutable_retests());
    f.set_down_up_ratio(Ratio(f.down_sent() + f.down_received(), f.up_sent() + f.up_received()));
    f.set_loops_closed_share(Ratio(f.loops_closed(), f.up_sent()));
  };
  std::sort(members.begin(), members.end(), [](const auth::Principal* a, const auth::Principal* b) {
    int la = LevelOrder(a->level), lb = LevelOrder(b->level);
    return la != lb ? la < lb : a->id < b->id;
  });
  for (const auth::Principal* p : members) {
    Tally& t = tally[p->id];
    finish(t);
    *report.add_institutions() = t.figures;
  }
  total.acceptance = all_acceptance;
  finish(total);
  // The alliance's ratio counts each referral once.
  total.figures.set_down_up_ratio(Ratio(total.figures.down_sent(), total.figures.up_sent()));
  *report.mutable_total() = total.figures;
  std::sort(all_acceptance.begin(), all_acceptance.end());
  for (double m : all_acceptance) report.add_acceptance_samples_minutes(m);

  // Every township clinic with every county hospital of the alliance is a partnership on paper.
  for (const auth::Principal* t : members) {
    if (t->level != auth::Level::kTownship) continue;
    for (const auth::Principal* c : members) {
      if (c->level == auth::Level::kTownship || c->role != auth::Role::kHospital) continue;
      pairs[{t->id, c->id}];
    }
  }
  std::vector<v1::Partnership> ranked;
  for (auto& [key, p] : pairs) {
    const auth::Principal* township = registry.Find(key.first);
    const auth::Principal* county = registry.Find(key.second);
    // Only pairs of this alliance's township and a higher-level institution.
    if (!township || !county || township->alliance != in.alliance ||
        county->alliance != in.alliance || township->level != auth::Level::kTownship ||
        county->level == auth::Level::kTownship) {
      continue;
    }
    p.set_township(key.first);
    p.set_county(key.second);
    p.set_total(p.up() + p.down() + p.consults());
    ranked.push_back(p);
  }
  std::sort(ranked.begin(), ranked.end(), [](const v1::Partnership& a, const v1::Partnership& b) {
    if (a.total() != b.total()) return a.total() > b.total();
    if (a.township() != b.township()) return a.township() < b.township();
    return a.county() < b.county();
  });
  for (size_t i = 0; i < ranked.size(); ++i) {
    ranked[i].set_rank(static_cast<uint32_t>(i + 1));
    *report.add_partnerships() = ranked[i];
  }
  for (auto& [key, f] : flows) {
    f.set_day(key.first);
    f.set_township(key.second);
    *report.add_flows() = f;
  }
  return report;
}

absl::StatusOr<v1::AllianceReport> LoadAllianceReport(storage::Store& store,
                                                      const auth::Registry& registry,
                                                      const std::string& alliance, Micros from,
                                                      Micros to) {
  ReportInput in;
  in.alliance = alliance;
  in.from = from;
  in.to = to;
  storage::ReferralQuery rq;
  rq.alliance = alliance;
  rq.submitted_from = from;
  rq.submitted_to = to;
  rq.limit = 1000;
  for (;;) {
    ASSIGN_OR_RETURN(auto page, store.ListReferrals(rq));
    for (storage::ReferralRecord& rec : page) {
      ReferralFacts f;
      if (!f.body.ParseFromString(rec.body)) return absl::DataLossError("stored referral damaged");
      ASSIGN_OR_RETURN(auto events, store.ListReferralEvents(rec.id));
      for (const auto& e : events) {
        if (!f.events.emplace_back().ParseFromString(e.body)) {
          return absl::DataLossError("stored referral event damaged");
        }
      }
      f.record = std::move(rec);
      in.referrals.push_back(std::move(f));
    }
    if (page.size() < rq.limit) break;
    rq.after_submitted_at = in.referrals.back().record.submitted_at;
    rq.after_id = in.referrals.back().record.id;
  }
  storage::ConsultQuery cq;
  cq.alliance = alliance;
  cq.requested_from = from;
  cq.requested_to = to;
  cq.limit = 1000;
  for (;;) {
    ASSIGN_OR_RETURN(auto page, store.ListConsults(cq));
    for (storage::ConsultRecord& rec : page) {
      ConsultFacts f;
      if (!f.body.ParseFromString(rec.body)) return absl::DataLossError("stored consult damaged");
      ASSIGN_OR_RETURN(auto events, store.ListConsultEvents(rec.id));
      for (const auto& e : events) {
        if (!f.events.emplace_back().ParseFromString(e.body)) {
          return absl::DataLossError("stored consult event damaged");
        }
      }
      f.record = std::move(rec);
      in.consults.push_back(std::move(f));
    }
    if (page.size() < cq.limit) break;
    cq.after_requested_at = in.consults.back().record.requested_at;
    cq.after_id = in.consults.back().record.id;
  }
  ASSIGN_OR_RETURN(in.retests, store.CountRetests(from, to));
  return BuildAllianceReport(registry, in);
}

}  // namespace refbroker::report

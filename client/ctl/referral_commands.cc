// refctl: the referral commands: `referrals` (a filtered list) and `referral show` (the whole
// journey, both legs, as a timeline).

#include <algorithm>
#include <cctype>
#include <iostream>

#include "client/ctl/commands.h"
#include "client/ctl/table.h"
#include "client/ctl/views.h"
#include "client/refclient/referral_client.h"
#include "google/protobuf/util/time_util.h"

namespace refctl {
namespace {

namespace v1 = refbroker::v1;
using google::protobuf::util::TimeUtil;

absl::Status BuildRequest(const ReferralFilter& f, v1::ListReferralsRequest& req) {
  req.set_institution(f.institution);
  req.set_journey_id(f.journey);
  if (!f.direction.empty()) {
    v1::Direction d;
    if (!v1::Direction_Parse(Upper(f.direction), &d)) {
      return absl::InvalidArgumentError("--direction: up or down");
    }
    req.set_direction(d);
  }
  if (!f.state.empty()) {
    v1::ReferralState s;
    if (!v1::ReferralState_Parse(Upper(f.state), &s)) {
      return absl::InvalidArgumentError("--state: e.g. submitted, accepted, escalated");
    }
    req.set_state(s);
  }
  if (!f.priority.empty()) {
    v1::Priority p;
    if (!v1::Priority_Parse(Upper(f.priority), &p)) {
      return absl::InvalidArgumentError("--priority: emergency, urgent or routine");
    }
    req.set_priority(p);
  }
  if (!f.from.empty()) {
    if (auto s = ParseDay(f.from, "--from", req.mutable_submitted_from()); !s.ok()) return s;
  }
  if (!f.to.empty()) {
    if (auto s = ParseDay(f.to, "--to", req.mutable_submitted_to()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string Describe(const v1::ReferralEvent& e) {
  std::string out;
  if (e.decline_reason() != v1::DECLINE_REASON_UNSPECIFIED) {
    out += v1::DeclineReason_Name(e.decline_reason()) + " ";
  }
  if (!e.text().empty()) out += e.text() + " ";
  if (!e.outcome_summary().empty()) out += "outcome: " + e.outcome_summary() + " ";
  if (!e.rerouted_to().empty()) out += "re-routed " + e.rerouted_from() + " -> " + e.rerouted_to();
  return out;
}

void PrintLeg(const v1::Referral& r, bool utc) {
  std::cout << v1::Direction_Name(r.direction()) << " leg " << r.id() << "  "
            << v1::Priority_Name(r.priority()) << "  " << r.from().institution() << " ("
            << r.from().department() << ") -> " << r.to_institution() << "  now "
            << v1::ReferralState_Name(r.state()) << "\n";
  if (r.direction() == v1::DOWN) {
    std::cout << "  down reason: " << v1::DownReason_Name(r.down_reason())
              << "; follow-up: " << r.follow_up_plan() << "\n";
  }
  if (r.has_decision_deadline()) {
    std::cout << "  decision due: " << FormatTime(r.decision_deadline().seconds(), utc) << "\n";
  }
  Table t({"TIME", "ACTION", "BY", "STATE", "DETAILS"});
  for (const auto& e : r.history()) {
    std::string by = e.actor().institution().empty()
                         ? "refbroker"
                         : e.actor().institution() + " " + e.actor().doctor().name();
    std::string states = e.from_state() == v1::REFERRAL_STATE_UNSPECIFIED
                             ? v1::ReferralState_Name(e.to_state())
                             : v1::ReferralState_Name(e.from_state()) + " -> " +
                                   v1::ReferralState_Name(e.to_state());
    t.AddRow({FormatTime(e.at().seconds(), utc), v1::ReferralAction_Name(e.action()), by, states,
              Describe(e)});
  }
  t.Print(std::cout);
}

}  // namespace

std::string Upper(std::string s) {
  for (char& c : s) c = c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return s;
}

absl::Status ParseDay(const std::string& text, const char* flag, google::protobuf::Timestamp* out) {
  google::protobuf::Timestamp ts;
  if (!TimeUtil::FromString(text + "T00:00:00+08:00", &ts)) {
    return absl::InvalidArgumentError(std::string(flag) + ": expected YYYY-MM-DD");
  }
  *out = ts;
  return absl::OkStatus();
}

int Referrals(const Globals& g, const ReferralFilter& f) {
  v1::ListReferralsRequest req;
  if (auto s = BuildRequest(f, req); !s.ok()) {
    std::cerr << "refctl: " << s.message() << "\n";
    return 2;
  }
  auto conn = Connect(g);
  refclient::ReferralClient client(*conn);
  v1::ListReferralsResponse all;
  while (static_cast<uint32_t>(all.referrals_size()) < f.limit) {
    req.set_page_size(std::min<uint32_t>(f.limit - all.referrals_size(), 500));
    auto page = client.List(req);
    if (!page.ok()) return Fail(page.status());
    for (auto& r : *page->mutable_referrals()) *all.add_referrals() = std::move(r);
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
  }
  if (g.json) {
    PrintJson(all);
    return 0;
  }
  PrintReferralList(all, g.utc, std::cout);
  return 0;
}

int ReferralShow(const Globals& g, const std::string& id) {
  auto conn = Connect(g);
  refclient::ReferralClient client(*conn);
  auto referral = client.Get(id);
  if (!referral.ok()) return Fail(referral.status());
  v1::ListReferralsRequest req;
  req.set_journey_id(referral->journey_id());
  req.set_include_history(true);
  req.set_page_size(10);
  auto legs = client.List(req);
  if (!legs.ok()) return Fail(legs.status());
  std::vector<v1::Referral> ordered(legs->referrals().begin(), legs->referrals().end());
  if (ordered.empty()) ordered.push_back(*referral);  // a leg the caller sees only by id
  std::sort(ordered.begin(), ordered.end(), [](const v1::Referral& a, const v1::Referral& b) {
    return a.submitted_at().seconds() < b.submitted_at().seconds() ||
           (a.submitted_at().seconds() == b.submitted_at().seconds() && a.id() < b.id());
  });
  if (g.json) {
    v1::ListReferralsResponse out;
    for (const auto& r : ordered) *out.add_referrals() = r;
    PrintJson(out);
    return 0;
  }
  std::cout << "journey " << referral->journey_id() << " (" << ordered.size() << " leg"
            << (ordered.size() == 1 ? "" : "s") << ")\n\n";
  for (size_t i = 0; i < ordered.size(); ++i) {
    PrintLeg(ordered[i], g.utc);
    if (i + 1 < ordered.size()) std::cout << "\n";
  }
  return 0;
}

}  // namespace refctl

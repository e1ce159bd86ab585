// refctl late: referrals and consults past their deadline or due within --within, most
// overdue first. A referral's deadline is the receiver's decision; a consult's is the target's
// acceptance or report. Escalated ones are listed until someone acts on them.

#include <algorithm>
#include <ctime>
#include <iostream>

#include "client/ctl/commands.h"
#include "client/ctl/table.h"
#include "client/refclient/consult_client.h"
#include "client/refclient/referral_client.h"

namespace refctl {
namespace {

namespace v1 = refbroker::v1;

struct LateRow {
  int64_t due = 0;  // unix seconds; 0 = escalated, no deadline left
  std::string kind, id, priority, state, from, to;
  bool escalated = false;
};

constexpr uint32_t kMaxPerState = 2000;

absl::Status CollectReferrals(refclient::ReferralClient& client, int64_t horizon,
                              std::vector<LateRow>& rows) {
  for (auto state : {v1::SUBMITTED, v1::DELIVERED, v1::ESCALATED}) {
    v1::ListReferralsRequest req;
    req.set_state(state);
    req.set_page_size(500);
    for (uint32_t seen = 0; seen < kMaxPerState;) {
      auto page = client.List(req);
      if (!page.ok()) return page.status();
      for (const auto& r : page->referrals()) {
        seen++;
        bool escalated = r.state() == v1::ESCALATED;
        int64_t due = r.has_decision_deadline() ? r.decision_deadline().seconds() : 0;
        if (!escalated && (due == 0 || due > horizon)) continue;
        rows.push_back({due, r.direction() == v1::UP ? "referral up" : "referral down", r.id(),
                        v1::Priority_Name(r.priority()), v1::ReferralState_Name(r.state()),
                        r.from().institution(), r.to_institution(), escalated});
      }
      if (page->next_page_token().empty()) break;
      req.set_page_token(page->next_page_token());
    }
  }
  return absl::OkStatus();
}

absl::Status CollectConsults(refclient::ConsultClient& client, int64_t horizon,
                             std::vector<LateRow>& rows) {
  for (auto state : {v1::CONSULT_REQUESTED, v1::CONSULT_ACCEPTED, v1::CONSULT_SCHEDULED}) {
    v1::ListConsultsRequest req;
    req.set_state(state);
    req.set_page_size(500);
    for (uint32_t seen = 0; seen < kMaxPerState;) {
      auto page = client.List(req);
      if (!page.ok()) return page.status();
      for (const auto& c : page->consults()) {
        seen++;
        int64_t due = c.has_deadline() ? c.deadline().seconds() : 0;
        if (!c.escalated() && (due == 0 || due > horizon)) continue;
        std::string state_name = v1::ConsultState_Name(c.state()).substr(8);  // "CONSULT_"
        rows.push_back({due, "consult " + v1::ConsultServiceType_Name(c.target().service()), c.id(),
                        v1::Priority_Name(c.priority()), state_name, c.from().institution(),
                        c.target().institution(), c.escalated()});
      }
      if (page->next_page_token().empty()) break;
      req.set_page_token(page->next_page_token());
    }
  }
  return absl::OkStatus();
}

}  // namespace

int Late(const Globals& g, int within_minutes) {
  if (within_minutes < 0) {
    std::cerr << "refctl: --within: minutes, 0 or more\n";
    return 2;
  }
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  int64_t horizon = now + int64_t{within_minutes} * 60;
  auto conn = Connect(g);
  refclient::ReferralClient referrals(*conn);
  refclient::ConsultClient consults(*conn);
  std::vector<LateRow> rows;
  if (auto s = CollectReferrals(referrals, horizon, rows); !s.ok()) return Fail(s);
  if (auto s = CollectConsults(consults, horizon, rows); !s.ok()) return Fail(s);
  // Escalated (no deadline left) first, then by deadline.
  std::sort(rows.begin(), rows.end(), [](const LateRow& a, const LateRow& b) {
    return a.due != b.due ? a.due < b.due : a.id < b.id;
  });
  if (g.json) {
    std::cout << "[";
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      std::cout << (i ? "," : "") << "{\"kind\":\"" << r.kind << "\",\"id\":\"" << r.id
                << "\",\"priority\":\"" << r.priority << "\",\"state\":\"" << r.state
                << "\",\"from\":\"" << r.from << "\",\"to\":\"" << r.to << "\",\"due\":" << r.due
                << ",\"escalated\":" << (r.escalated ? "true" : "false") << "}";
    }
    std::cout << "]\n";
    return 0;
  }
  Table t({"KIND", "ID", "PRIORITY", "STATE", "FROM", "TO", "DUE", "LATE BY"});
  size_t overdue = 0;
  for (const auto& r : rows) {
    std::string late = "-";
    if (r.due != 0 && r.due <= now) {
      late = std::to_string((now - r.due) / 60) + " min";
      overdue++;
    }
    if (r.escalated) late = r.due == 0 ? "escalated" : late + ", escalated";
    t.AddRow({r.kind, r.id, r.priority, r.state, r.from, r.to,
              r.due ? FormatTime(r.due, g.utc) : "-", late});
  }
  t.Print(std::cout);
  std::cout << rows.size() << " late or due within " << within_minutes << " min (" << overdue
            << " past their deadline)\n";
  return 0;
}

}  // namespace refctl

// refctl: the consult commands: `consults` (a filtered list) and `consult show` (the consult
// with its history, reports (digests verified) and thread).

#include <algorithm>
#include <iostream>

#include "client/ctl/commands.h"
#include "client/ctl/table.h"
#include "client/refclient/consult_client.h"

namespace refctl {
namespace {

namespace v1 = refbroker::v1;

template <typename Enum, typename Parse>
absl::Status ParseEnum(const std::string& word, const char* flag, const char* prefix, Parse parse,
                       Enum* out) {
  if (parse(Upper(word), out) || parse(std::string(prefix) + Upper(word), out)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(std::string(flag) + ": unknown value '" + word + "'");
}

absl::Status BuildRequest(const ConsultFilter& f, v1::ListConsultsRequest& req) {
  req.set_institution(f.institution);
  if (!f.state.empty()) {
    v1::ConsultState s;
    if (auto st = ParseEnum(f.state, "--state", "CONSULT_", v1::ConsultState_Parse, &s); !st.ok())
      return st;
    req.set_state(s);
  }
  if (!f.service.empty()) {
    v1::ConsultServiceType s;
    if (auto st = ParseEnum(f.service, "--service", "", v1::ConsultServiceType_Parse, &s); !st.ok())
      return st;
    req.set_service(s);
  }
  if (!f.priority.empty()) {
    v1::Priority p;
    if (auto st = ParseEnum(f.priority, "--priority", "", v1::Priority_Parse, &p); !st.ok())
      return st;
    req.set_priority(p);
  }
  if (!f.from.empty()) {
    if (auto s = ParseDay(f.from, "--from", req.mutable_requested_from()); !s.ok()) return s;
  }
  if (!f.to.empty()) {
    if (auto s = ParseDay(f.to, "--to", req.mutable_requested_to()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// "CONSULT_ACCEPTED" -> "ACCEPTED": the prefix only keeps the proto enums apart.
std::string Short(const std::string& name) {
  return name.rfind("CONSULT_", 0) == 0 ? name.substr(8) : name;
}

std::string Target(const v1::Consult& c) {
  std::string t =
      c.target().institution() + " " + v1::ConsultServiceType_Name(c.target().service());
  if (!c.target().specialty().empty()) t += "/" + c.target().specialty();
  return t;
}

void PrintReports(const v1::Consult& c, bool utc) {
  for (const auto& r : c.reports()) {
    std::cout << "\n"
              << (r.content().addendum_to().empty() ? "report " : "addendum ") << r.id()
              << "  issued " << FormatTime(r.content().issued_at().seconds(), utc) << "  signed "
              << r.signer() << "\n";
    if (!r.content().addendum_to().empty()) {
      std::cout << "  adds to:          " << r.content().addendum_to() << "\n";
    }
    std::cout << "  sha256:           " << r.sha256() << "  ("
              << (refclient::VerifyReportDigest(r) ? "verified" : "DOES NOT MATCH") << ")\n"
              << "  findings:         " << r.content().findings() << "\n"
              << "  opinion:          " << r.content().opinion() << "\n";
    if (!r.content().recommendations().empty()) {
      std::cout << "  recommendations:  " << r.content().recommendations() << "\n";
    }
    if (!r.result_id().empty()) std::cout << "  reading result:   " << r.result_id() << "\n";
  }
}

}  // namespace

int Consults(const Globals& g, const ConsultFilter& f) {
  v1::ListConsultsRequest req;
  if (auto s = BuildRequest(f, req); !s.ok()) {
    std::cerr << "refctl: " << s.message() << "\n";
    return 2;
  }
  auto conn = Connect(g);
  refclient::ConsultClient client(*conn);
  v1::ListConsultsResponse all;
  while (static_cast<uint32_t>(all.consults_size()) < f.limit) {
    req.set_page_size(std::min<uint32_t>(f.limit - all.consults_size(), 500));
    auto page = client.List(req);
    if (!page.ok()) return Fail(page.status());
    for (auto& c : *page->mutable_consults()) *all.add_consults() = std::move(c);
    if (page->next_page_token().empty()) break;
    req.set_page_token(page->next_page_token());
  }
  if (g.json) {
    PrintJson(all);
    return 0;
  }
  Table t({"ID", "PRIORITY", "STATE", "FROM", "TO", "REQUESTED", "DUE", "REPORTS"});
  for (const auto& c : all.consults()) {
    std::string due = c.has_deadline() ? FormatTime(c.deadline().seconds(), g.utc) : "-";
    if (c.escalated()) due += " (escalated)";
    t.AddRow({c.id(), v1::Priority_Name(c.priority()), Short(v1::ConsultState_Name(c.state())),
              c.from().institution(), Target(c), FormatTime(c.requested_at().seconds(), g.utc), due,
              std::to_string(c.reports_size())});
  }
  t.Print(std::cout);
  std::cout << all.consults_size() << " consult(s)\n";
  return 0;
}

int ConsultShow(const Globals& g, const std::string& id) {
  auto conn = Connect(g);
  auto c = refclient::ConsultClient(*conn).Get(id, /*include_thread=*/true);
  if (!c.ok()) return Fail(c.status());
  if (g.json) {
    PrintJson(*c);
    return 0;
  }
  std::cout << "consult " << c->id() << "  " << v1::Priority_Name(c->priority()) << "  "
            << c->from().institution() << " (" << c->from().department() << ") -> " << Target(*c)
            << "  now " << Short(v1::ConsultState_Name(c->state()))
            << (c->escalated() ? " (escalated)" : "") << "\n";
  std::cout << "  question: " << c->question() << "\n";
  if (c->has_deadline()) {
    std::cout << "  due: " << FormatTime(c->deadline().seconds(), g.utc) << "\n";
  }
  if (c->has_schedule()) {
    std::cout << "  session: " << FormatTime(c->schedule().session_at().seconds(), g.utc) << " "
              << c->schedule().meeting_url() << "\n";
  }
  if (!c->converted_referral_id().empty()) {
    std::cout << "  converted to referral " << c->converted_referral_id() << "\n";
  }
  Table h({"TIME", "ACTION", "BY", "STATE", "DETAILS"});
  for (const auto& e : c->history()) {
    std::string by = e.actor().institution().empty()
                         ? "refbroker"
                         : e.actor().institution() + " " + e.actor().doctor().name();
    std::string details = e.text();
    if (e.decline_reason() != v1::DECLINE_REASON_UNSPECIFIED) {
      details = v1::DeclineReason_Name(e.decline_reason()) + " " + details;
    }
    if (!e.report_id().empty()) details += e.report_id();
    if (!e.referral_id().empty()) details += "referral " + e.referral_id();
    h.AddRow({FormatTime(e.at().seconds(), g.utc), Short(v1::ConsultAction_Name(e.action())), by,
              Short(v1::ConsultState_Name(e.to_state())), details});
  }
  std::cout << "\n";
  h.Print(std::cout);
  PrintReports(*c, g.utc);
  if (c->thread_size() > 0) {
    std::cout << "\nthread (" << c->thread_size() << " message"
              << (c->thread_size() == 1 ? "" : "s") << ")\n";
    Table t({"#", "TIME", "FROM", "TEXT"});
    for (const auto& m : c->thread()) {
      std::string text = m.text();
      for (const auto& r : m.result_ids()) text += " [" + r + "]";
      t.AddRow({std::to_string(m.seq()), FormatTime(m.sent_at().seconds(), g.utc),
                m.author().institution() + " " + m.author().doctor().name(), text});
    }
    t.Print(std::cout);
  }
  return 0;
}

}  // namespace refctl

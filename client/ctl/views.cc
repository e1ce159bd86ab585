#include "client/ctl/views.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <map>
#include <vector>

#include "broker/common/html.h"
#include "client/ctl/table.h"

namespace refctl {
namespace {

namespace v1 = refbroker::v1;

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Minutes(const v1::Percentiles& p, bool p90) {
  if (p.count() == 0) return "-";
  return Fixed(p90 ? p.p90_minutes() : p.p50_minutes(), 1);
}

std::string Percent(uint64_t num, uint64_t den) {
  if (den == 0) return "-";
  return Fixed(100.0 * static_cast<double>(num) / static_cast<double>(den), 1) + "%";
}

uint64_t Sum(const google::protobuf::RepeatedPtrField<v1::ReasonCount>& counts) {
  uint64_t n = 0;
  for (const auto& c : counts) n += c.count();
  return n;
}

std::string N(uint64_t v) { return std::to_string(v); }

std::string Period(const v1::AllianceReport& r, bool utc) {
  return FormatTime(r.from().seconds(), utc) + " to " + FormatTime(r.to().seconds(), utc);
}

void PrintReasons(const char* title, const google::protobuf::RepeatedPtrField<v1::ReasonCount>& c,
                  std::ostream& out) {
  out << title << "\n";
  if (c.empty()) {
    out << "(none)\n\n";
    return;
  }
  Table t({"REASON", "COUNT"});
  for (const auto& rc : c) t.AddRow({rc.reason(), N(rc.count())});
  t.Print(out);
  out << "\n";
}

std::string Csv(const std::string& field) {
  if (field.find_first_of(",\"\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string Html(const std::string& text) { return refbroker::HtmlEscape(text); }

// A histogram of `samples` (minutes) as an SVG bar chart.
void Histogram(const std::string& title, const google::protobuf::RepeatedField<double>& samples,
               std::ostream& out) {
  out << "<figure><figcaption>" << Html(title) << " (" << samples.size()
      << " samples, minutes)</figcaption>\n";
  if (samples.empty()) {
    out << "<p class=\"none\">no samples in the period</p></figure>\n";
    return;
  }
  double hi = *std::max_element(samples.begin(), samples.end());
  constexpr int kBins = 12;
  double width = hi <= 0 ? 1.0 : hi / kBins;
  std::vector<int> bins(kBins, 0);
  for (double s : samples) bins[std::min(kBins - 1, static_cast<int>(s / width))]++;
  int top = *std::max_element(bins.begin(), bins.end());
  const int w = 480, h = 160, bar = w / kBins;
  out << "<svg class=\"chart\" role=\"img\" viewBox=\"0 0 " << w << " " << h + 30 << "\" width=\""
      << w << "\" height=\"" << h + 30 << "\">\n";
  for (int i = 0; i < kBins; ++i) {
    int bh = top == 0 ? 0 : bins[i] * h / top;
    out << "<rect class=\"bar\" x=\"" << i * bar + 1 << "\" y=\"" << h - bh << "\" width=\""
        << bar - 2 << "\" height=\"" << bh << "\"><title>" << Fixed(i * width, 1) << "–"
        << Fixed((i + 1) * width, 1) << " min: " << bins[i] << "</title></rect>\n";
  }
  out << "<text x=\"0\" y=\"" << h + 20 << "\">0</text><text x=\"" << w - 60 << "\" y=\"" << h + 20
      << "\">" << Fixed(hi, 1) << " min</text>\n</svg></figure>\n";
}

// Up and down referrals per day for one township, as an SVG bar chart.
void FlowChart(const std::string& township, const std::vector<const v1::DailyFlow*>& days,
               std::ostream& out) {
  uint64_t top = 1;
  for (const auto* d : days) top = std::max({top, d->up(), d->down()});
  const int h = 120, step = 28;
  const int w = std::max<int>(200, static_cast<int>(days.size()) * step);
  out << "<figure><figcaption>" << Html(township) << ": up (blue) and down (orange) per day"
      << "</figcaption>\n<svg class=\"chart\" role=\"img\" viewBox=\"0 0 " << w << " " << h + 30
      << "\" width=\"" << w << "\" height=\"" << h + 30 << "\">\n";
  for (size_t i = 0; i < days.size(); ++i) {
    const v1::DailyFlow& d = *days[i];
    int x = static_cast<int>(i) * step;
    int uh = static_cast<int>(d.up() * h / top), dh = static_cast<int>(d.down() * h / top);
    out << "<rect class=\"up\" x=\"" << x + 2 << "\" y=\"" << h - uh << "\" width=\"11\" height=\""
        << uh << "\"><title>" << d.day() << " up " << d.up() << "</title></rect>";
    out << "<rect class=\"down\" x=\"" << x + 14 << "\" y=\"" << h - dh
        << "\" width=\"11\" height=\"" << dh << "\"><title>" << d.day() << " down " << d.down()
        << "</title></rect>\n";
  }
  if (!days.empty()) {
    out << "<text x=\"0\" y=\"" << h + 20 << "\">" << days.front()->day() << "</text>";
    if (days.size() > 1) {
      out << "<text x=\"" << w - 80 << "\" y=\"" << h + 20 << "\">" << days.back()->day()
          << "</text>";
    }
  }
  out << "\n</svg></figure>\n";
}

void HtmlTable(const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows, std::ostream& out) {
  out << "<table><thead><tr>";
  for (const auto& h : header) out << "<th>" << Html(h) << "</th>";
  out << "</tr></thead><tbody>\n";
  for (const auto& row : rows) {
    out << "<tr>";
    for (const auto& cell : row) out << "<td>" << Html(cell) << "</td>";
    out << "</tr>\n";
  }
  out << "</tbody></table>\n";
}

std::vector<std::string> ReferralRow(const v1::InstitutionFigures& f) {
  return {f.institution(),
          f.name(),
          f.level(),
          N(f.up_sent()),
          N(f.up_received()),
          N(f.down_sent()),
          N(f.down_received()),
          Fixed(f.down_up_ratio(), 2),
          N(f.accepted()),
          N(f.declined()),
          Minutes(f.acceptance(), false),
          Minutes(f.acceptance(), true),
          N(f.loops_closed()) + " (" + Percent(f.loops_closed(), f.up_sent()) + ")",
          N(f.deadline_breaches())};
}
const std::vector<std::string> kReferralHeader = {
    "INSTITUTION", "NAME",        "LEVEL",        "UP SENT",  "UP RECV",
    "DOWN SENT",   "DOWN RECV",   "DOWN/UP",      "ACCEPTED", "DECLINED",
    "ACCEPT P50m", "ACCEPT P90m", "LOOPS CLOSED", "BREACHES"};

std::vector<std::string> RecognitionRow(const v1::InstitutionFigures& f) {
  return {f.institution(),
          f.name(),
          N(f.results_attached()),
          N(f.results_recognizable()),
          Percent(f.results_recognizable(), f.results_attached()),
          N(Sum(f.retests())),
          N(f.repeats_without_reason())};
}
const std::vector<std::string> kRecognitionHeader = {
    "INSTITUTION", "NAME", "ATTACHED", "RECOGNIZABLE", "SHARE", "RETESTS", "REPEATS W/O REASON"};

std::vector<std::string> ConsultRow(const v1::InstitutionFigures& f) {
  return {f.institution(), f.name(), N(f.consults_requested()), N(f.consults_received()),
          N(f.consults_reported())};
}
const std::vector<std::string> kConsultHeader = {"INSTITUTION", "NAME", "REQUESTED", "RECEIVED",
                                                 "REPORTED"};

std::vector<std::string> PartnershipRow(const v1::Partnership& p) {
  return {N(p.rank()), p.township(),    p.county(),   N(p.up()),
          N(p.down()), N(p.consults()), N(p.total()), p.total() == 0 ? "on paper only" : ""};
}
const std::vector<std::string> kPartnershipHeader = {"RANK", "TOWNSHIP", "COUNTY", "UP",
                                                     "DOWN", "CONSULTS", "TOTAL",  "NOTE"};

std::vector<std::string> TurnaroundRow(const v1::ServiceTurnaround& s) {
  return {s.service(), N(s.requested()), N(s.reported()), Minutes(s.turnaround(), false),
          Minutes(s.turnaround(), true)};
}
const std::vector<std::string> kTurnaroundHeader = {"SERVICE", "REQUESTED", "REPORTED", "P50m",
                                                    "P90m"};

template <typename Row>
void PrintSection(const char* title, const std::vector<std::string>& header,
                  const v1::AllianceReport& r, Row row, std::ostream& out) {
  out << title << "\n";
  Table t(header);
  for (const auto& f : r.institutions()) t.AddRow(row(f));
  t.AddRow(row(r.total()));
  t.Print(out);
  out << "\n";
}

}  // namespace

std::string FormatTime(int64_t unix_seconds, bool utc) {
  std::time_t t = static_cast<std::time_t>(unix_seconds + (utc ? 0 : 8 * 3600));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(buf) + (utc ? " UTC" : " +08:00");
}

// Age of the oldest waiting message; "-" when nothing waits.
std::string Age(int64_t seconds, uint64_t depth) {
  if (depth == 0) return "-";
  if (seconds <= 0) return "0s";
  char buf[32];
  if (seconds < 60)
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(seconds));
  else if (seconds < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(seconds / 60),
                  static_cast<long long>(seconds % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(seconds / 3600),
                  static_cast<long long>(seconds % 3600 / 60));
  return buf;
}

std::string KindName(refbroker::v1::QueueKind k) {
  std::string n = refbroker::v1::QueueKind_Name(k);
  for (char& c : n) c = c == '_' ? '-' : static_cast<char>(std::tolower(c));
  return n;
}

void PrintQueues(const v1::ListQueuesResponse& r, std::ostream& out) {
  for (const char* dir : {"up", "down", ""}) {
    Table t({"QUEUE", "INSTITUTION", "DIR", "DEPTH", "IN FLIGHT", "OLDEST", "LATE", "DEAD",
             "CONSUMERS", "RETAINED"});
    int rows = 0;
    for (const auto& q : r.queues()) {
      if (q.direction() != dir) continue;
      uint32_t consumers = 0;
      for (const auto& gs : q.groups()) consumers += gs.consumers();
      t.AddRow({q.queue().owner() + "/" + KindName(q.queue().kind()), q.owner_name(),
                q.direction().empty() ? "-" : q.direction(), N(q.depth()), N(q.in_flight()),
                Age(q.oldest_age_seconds(), q.depth()), N(q.deadline_breaches()),
                N(q.dead_letters()), std::to_string(consumers), N(q.retained())});
      rows++;
    }
    if (rows == 0) continue;
    out << (std::string(dir) == "up"     ? "Up-referral queues (county receivers)\n"
            : std::string(dir) == "down" ? "Down-referral queues (township receivers)\n"
                                         : "Other queues\n");
    t.Print(out);
    out << "\n";
  }
}

void PrintReferralList(const v1::ListReferralsResponse& all, bool utc, std::ostream& out) {
  Table t({"ID", "DIR", "PRIORITY", "STATE", "FROM", "TO", "SUBMITTED", "DECISION DUE"});
  for (const auto& r : all.referrals()) {
    t.AddRow({r.id(), r.direction() == v1::UP ? "up" : "down", v1::Priority_Name(r.priority()),
              v1::ReferralState_Name(r.state()), r.from().institution(), r.to_institution(),
              FormatTime(r.submitted_at().seconds(), utc),
              r.has_decision_deadline() ? FormatTime(r.decision_deadline().seconds(), utc) : "-"});
  }
  t.Print(out);
  out << all.referrals_size() << " referral(s)\n";
}

void PrintReport(const v1::AllianceReport& r, bool utc, std::ostream& out) {
  const v1::InstitutionFigures& total = r.total();
  out << "Alliance report: " << r.alliance_name() << " (" << r.alliance() << ")\n"
      << Period(r, utc) << "\n\n";
  out << "Headline: " << total.up_sent() << " up, " << total.down_sent() << " down (down/up "
      << Fixed(total.down_up_ratio(), 2) << "); loops closed "
      << Percent(total.loops_closed(), total.up_sent()) << "; acceptance p50 "
      << Minutes(total.acceptance(), false) << " min, p90 " << Minutes(total.acceptance(), true)
      << " min; " << total.deadline_breaches() << " deadline breaches; "
      << total.consults_requested() << " consults; results recognizable "
      << Percent(total.results_recognizable(), total.results_attached()) << "; "
      << total.repeats_without_reason() << " repeats without reason\n\n";
  PrintSection("Referrals", kReferralHeader, r, ReferralRow, out);
  PrintReasons("Decline reasons (alliance)", total.decline_reasons(), out);
  PrintSection("Consults and readings", kConsultHeader, r, ConsultRow, out);
  out << "Turnaround by service (request to first report)\n";
  Table ta(kTurnaroundHeader);
  for (const auto& s : r.consult_turnaround()) ta.AddRow(TurnaroundRow(s));
  ta.Print(out);
  out << "\n";
  PrintSection("Mutual recognition", kRecognitionHeader, r, RecognitionRow, out);
  PrintReasons("Re-test reasons (alliance)", total.retests(), out);
  out << "Township-county partnerships by activity\n";
  Table tp(kPartnershipHeader);
  for (const auto& p : r.partnerships()) tp.AddRow(PartnershipRow(p));
  tp.Print(out);
}

void PrintReportCsv(const v1::AllianceReport& r, std::ostream& out) {
  out << "institution,name,level,up_sent,up_received,down_sent,down_received,down_up_ratio,"
         "accepted,declined,acceptance_p50_minutes,acceptance_p90_minutes,loops_closed,"
         "loops_closed_share,deadline_breaches,consults_requested,consults_received,"
         "consults_reported,results_attached,results_recognizable,retests,"
         "repeats_without_reason\n";
  auto row = [&out](const v1::InstitutionFigures& f) {
    out << Csv(f.institution()) << "," << Csv(f.name()) << "," << f.level() << "," << f.up_sent()
        << "," << f.up_received() << "," << f.down_sent() << "," << f.down_received() << ","
        << Fixed(f.down_up_ratio(), 4) << "," << f.accepted() << "," << f.declined() << ","
        << Fixed(f.acceptance().p50_minutes(), 2) << "," << Fixed(f.acceptance().p90_minutes(), 2)
        << "," << f.loops_closed() << "," << Fixed(f.loops_closed_share(), 4) << ","
        << f.deadline_breaches() << "," << f.consults_requested() << "," << f.consults_received()
        << "," << f.consults_reported() << "," << f.results_attached() << ","
        << f.results_recognizable() << "," << Sum(f.retests()) << "," << f.repeats_without_reason()
        << "\n";
  };
  for (const auto& f : r.institutions()) row(f);
  row(r.total());
}

void WriteReportHtml(const v1::AllianceReport& r, bool utc, std::ostream& out) {
  const v1::InstitutionFigures& total = r.total();
  out << "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\n<title>"
      << Html(r.alliance_name()) << " alliance report</title>\n<style>\n"
      << "body{font-family:sans-serif;margin:2em;color:#222}"
         "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
         "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
         "th{background:#f0f0f0}td:nth-child(2){text-align:left}"
         ".headline{display:flex;gap:1.5em;flex-wrap:wrap}"
         ".figure{border:1px solid #ccc;padding:0.6em 1em;border-radius:4px}"
         ".figure b{display:block;font-size:1.6em}"
         "rect.bar{fill:#4a78b5}rect.up{fill:#4a78b5}rect.down{fill:#e08a2c}"
         "figure{display:inline-block;margin:0 1.5em 1em 0}svg text{font-size:11px}\n"
      << "</style></head><body>\n<h1>" << Html(r.alliance_name()) << " (" << Html(r.alliance())
      << ")</h1>\n<p>" << Html(Period(r, utc)) << "</p>\n<div class=\"headline\">\n";
  auto figure = [&out](const std::string& label, const std::string& value, const char* id) {
    out << "<div class=\"figure\" id=\"" << id << "\"><b>" << Html(value) << "</b>" << Html(label)
        << "</div>\n";
  };
  figure("up-referrals", N(total.up_sent()), "up");
  figure("down-referrals", N(total.down_sent()), "down");
  figure("down/up ratio", Fixed(total.down_up_ratio(), 2), "ratio");
  figure("loops closed", Percent(total.loops_closed(), total.up_sent()), "loops");
  figure("acceptance p50 (min)", Minutes(total.acceptance(), false), "acceptance");
  figure("deadline breaches", N(total.deadline_breaches()), "breaches");
  figure("consults", N(total.consults_requested()), "consults");
  figure("results recognizable", Percent(total.results_recognizable(), total.results_attached()),
         "recognizable");
  figure("repeats without reason", N(total.repeats_without_reason()), "repeats");
  out << "</div>\n<h2>Referrals</h2>\n";
  auto rows = [&r](auto fn) {
    std::vector<std::vector<std::string>> table;
    for (const auto& f : r.institutions()) table.push_back(fn(f));
    table.push_back(fn(r.total()));
    return table;
  };
  HtmlTable(kReferralHeader, rows(ReferralRow), out);
  out << "<h2>Up and down flows per township</h2>\n";
  std::map<std::string, std::vector<const v1::DailyFlow*>> by_township;
  for (const auto& f : r.flows()) by_township[f.township()].push_back(&f);
  for (const auto& [township, days] : by_township) FlowChart(township, days, out);
  out << "<h2>Turnaround distributions</h2>\n";
  Histogram("Referral acceptance", r.acceptance_samples_minutes(), out);
  for (const auto& s : r.consult_turnaround()) Histogram(s.service(), s.samples_minutes(), out);
  out << "<h2>Consults and readings</h2>\n";
  HtmlTable(kConsultHeader, rows(ConsultRow), out);
  std::vector<std::vector<std::string>> turnaround;
  for (const auto& s : r.consult_turnaround()) turnaround.push_back(TurnaroundRow(s));
  HtmlTable(kTurnaroundHeader, turnaround, out);
  out << "<h2>Mutual recognition</h2>\n";
  HtmlTable(kRecognitionHeader, rows(RecognitionRow), out);
  out << "<h2>Township–county partnerships by activity</h2>\n";
  std::vector<std::vector<std::string>> partnerships;
  for (const auto& p : r.partnerships()) partnerships.push_back(PartnershipRow(p));
  HtmlTable(kPartnershipHeader, partnerships, out);
  out << "</body></html>\n";
}

}  // namespace refctl

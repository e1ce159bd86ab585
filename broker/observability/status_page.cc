#include "broker/observability/status_page.h"

#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "broker/common/html.h"
#include "broker/common/queue_name.h"

namespace refbroker::observability {
namespace {

namespace v1 = refbroker::v1;

std::string Html(const std::string& text) { return refbroker::HtmlEscape(text); }

std::string ChinaTime(Micros at) {
  std::time_t t = static_cast<std::time_t>(at / 1000000 + 8 * 3600);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return absl::StrCat(buf, " +08:00");
}

std::string Percent(uint64_t num, uint64_t den) {
  if (den == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * static_cast<double>(num) / den);
  return buf;
}

std::string Fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

std::string RenderStatusPage(const v1::ListQueuesResponse& queues, const v1::AllianceReport& today,
                             const std::string& viewer, Micros now) {
  const v1::InstitutionFigures& t = today.total();
  std::string out = absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"10\"><title>refbroker status</title>\n<style>"
      "body{font-family:sans-serif;margin:1.5em;color:#222}"
      "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
      "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}"
      "td.name{text-align:left}tr.late td{background:#fde2e2}"
      ".figures{display:flex;gap:1em;flex-wrap:wrap}.figure{border:1px solid #ccc;"
      "padding:0.5em 1em;border-radius:4px}.figure b{display:block;font-size:1.5em}"
      "</style></head><body>\n<h1>refbroker — ",
      Html(today.alliance_name()), "</h1>\n<p id=\"viewer\">", Html(viewer), " · ", ChinaTime(now),
      "</p>\n<h2>Today</h2>\n<div class=\"figures\">\n");
  auto figure = [&out](const char* id, const std::string& label, const std::string& value) {
    absl::StrAppend(&out, "<div class=\"figure\"><b id=\"", id, "\">", Html(value), "</b>",
                    Html(label), "</div>\n");
  };
  figure("up", "up-referrals", std::to_string(t.up_sent()));
  figure("down", "down-referrals", std::to_string(t.down_sent()));
  figure("ratio", "down/up", Fixed(t.down_up_ratio()));
  figure("loops", "loops closed", Percent(t.loops_closed(), t.up_sent()));
  figure("breaches", "deadline breaches", std::to_string(t.deadline_breaches()));
  figure("consults", "consults", std::to_string(t.consults_requested()));
  figure("recognizable", "results recognizable",
         Percent(t.results_recognizable(), t.results_attached()));
  absl::StrAppend(&out,
                  "</div>\n<h2>Queues</h2>\n<table id=\"queues\"><thead><tr>"
                  "<th>queue</th><th>institution</th><th>dir</th><th>depth</th>"
                  "<th>in flight</th><th>oldest (s)</th><th>late</th><th>dead</th>"
                  "<th>consumers</th></tr></thead><tbody>\n");
  for (const char* dir : {"up", "down", ""}) {
    for (const auto& q : queues.queues()) {
      if (q.direction() != dir) continue;
      uint32_t consumers = 0;
      for (const auto& g : q.groups()) consumers += g.consumers();
      std::string name = QueueName{q.queue().owner(), q.queue().kind()}.ToString();
      absl::StrAppend(&out, "<tr data-queue=\"", Html(name), "\"",
                      q.deadline_breaches() > 0 ? " class=\"late\"" : "", "><td class=\"name\">",
                      Html(name), "</td><td class=\"name\">", Html(q.owner_name()), "</td><td>",
                      q.direction().empty() ? "-" : q.direction(), "</td><td class=\"depth\">",
                      q.depth(), "</td><td>", q.in_flight(), "</td><td>", q.oldest_age_seconds(),
                      "</td><td>", q.deadline_breaches(), "</td><td>", q.dead_letters(),
                      "</td><td>", consumers, "</td></tr>\n");
    }
  }
  absl::StrAppend(&out, "</tbody></table>\n</body></html>\n");
  return out;
}

}  // namespace refbroker::observability

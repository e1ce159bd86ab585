// refctl: the alliance operator's command line. Table output for people, --json for scripts.
//
//   refctl queues                      queue depth, in flight, oldest age, late, dead letters
//   refctl watch [--interval S]        the queue table, redrawn live
//   refctl dlq list [--queue Q]        dead letters (metadata only)
//   refctl dlq requeue --queue Q --group G [--seq N]
//   refctl dlq requeue --from FILE     those listed in FILE (`--json dlq list`'s JSON; - = stdin)
//   refctl referrals [filters]         referrals the caller may see, newest first
//   refctl referral show ID            the whole journey (both legs) as a timeline
//   refctl results --id ID             a patient's result records you may read
//   refctl recognize --id ID --item C  which results can be reused (互认), or why not
//   refctl retests                     re-test reasons and repeats without reason
//   refctl consults [filters]          teleconsultations and readings, newest first
//   refctl consult show ID             a consult: history, reports (digest checked), thread
//   refctl late [--within MIN]         referrals and consults late, escalated or due soon
//   refctl report --from D --to D      the alliance report (table, --json, --csv, --html FILE)
//   refctl audit verify                walk the audit hash chain (auditors)
//   refctl audit search --id ID        who touched a patient's data (auditors)
//   refctl health
//
// Connection: --broker host:port (repeatable), certificates from --certs DIR as --as NAME
// (DIR/NAME.crt, DIR/NAME.key, DIR/ca.crt), or explicit --ca/--cert/--key.

#include <CLI/CLI.hpp>
#include <iostream>

#include "client/ctl/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"refctl — operator CLI of refbroker"};
  app.require_subcommand(1);
  refctl::Globals g;
  app.add_option("--broker", g.brokers, "broker host:port (repeatable; env REFCTL_BROKER)");
  app.add_option("--certs", g.certs_dir, "certificate directory (env REFCTL_CERTS, certs/dev)");
  app.add_option("--as", g.as, "certificate name in the directory (default operator)");
  app.add_option("--ca", g.ca, "CA certificate (PEM)");
  app.add_option("--cert", g.cert, "client certificate (PEM)");
  app.add_option("--key", g.key, "client key (PEM)");
  app.add_flag("--json", g.json, "JSON output (proto field names)");
  app.add_flag("--utc", g.utc, "times in UTC (default: China Standard Time, UTC+8)");

  std::string owner;
  auto* queues = app.add_subcommand("queues", "queue status, grouped by direction up/down");
  queues->add_option("--owner", owner, "only queues of this institution code");

  int interval = 2, count = 0;
  auto* watch = app.add_subcommand("watch", "the queue table, redrawn live");
  watch->add_option("--owner", owner, "only queues of this institution code");
  watch->add_option("--interval", interval, "seconds between redraws (default 2)")
      ->check(CLI::Range(1, 3600));
  watch->add_option("--count", count, "stop after this many redraws (default: never)");

  auto* dlq = app.add_subcommand("dlq", "dead letters");
  dlq->require_subcommand(1);
  std::string queue, group;
  uint32_t limit = 100;
  uint64_t seq = 0;
  std::string requeue_from;
  auto* dlq_list = dlq->add_subcommand("list", "list dead letters");
  dlq_list->add_option("--queue", queue, "<owner>/<kind>, e.g. CODE/referrals");
  dlq_list->add_option("--group", group, "consumer group");
  dlq_list->add_option("--limit", limit, "at most this many (≤1000)");
  auto* dlq_requeue = dlq->add_subcommand("requeue", "put dead letters back on their queue");
  auto* requeue_queue = dlq_requeue->add_option("--queue", queue, "<owner>/<kind>");
  auto* requeue_group = dlq_requeue->add_option("--group", group, "consumer group");
  auto* requeue_seq =
      dlq_requeue->add_option("--seq", seq, "one sequence; omitted = all of the queue and group");
  auto* requeue_file = dlq_requeue->add_option(
      "--from", requeue_from,
      "the dead letters listed in this file, as `refctl --json dlq list` prints them (- = stdin)");
  requeue_file->excludes(requeue_queue)->excludes(requeue_group)->excludes(requeue_seq);
  requeue_queue->needs(requeue_group);
  requeue_group->needs(requeue_queue);

  refctl::ReferralFilter filter;
  auto* referrals = app.add_subcommand("referrals", "list referrals, newest first");
  referrals->add_option("--institution", filter.institution, "sender or receiver code");
  referrals->add_option("--direction", filter.direction, "up or down");
  referrals->add_option("--state", filter.state, "e.g. submitted, accepted, escalated");
  referrals->add_option("--priority", filter.priority, "emergency, urgent or routine");
  referrals->add_option("--from", filter.from, "submitted on or after YYYY-MM-DD (UTC+8)");
  referrals->add_option("--to", filter.to, "submitted before YYYY-MM-DD (UTC+8)");
  referrals->add_option("--journey", filter.journey, "one journey id");
  referrals->add_option("--limit", filter.limit, "at most this many (default 50)");

  auto* referral = app.add_subcommand("referral", "one referral");
  referral->require_subcommand(1);
  std::string id;
  auto* referral_show = referral->add_subcommand("show", "the journey as a timeline, both legs");
  referral_show->alias("get");
  referral_show->add_option("id", id, "broker referral id")->required();

  refctl::PatientArgs patient;
  std::vector<std::string> items;
  auto* results = app.add_subcommand("results", "a patient's result records");
  auto* recognize = app.add_subcommand("recognize", "mutual recognition of a patient's results");
  for (CLI::App* cmd : {results, recognize}) {
    cmd->add_option("--id", patient.value, "patient identifier value")->required();
    cmd->add_option("--id-type", patient.type, "RESIDENT_ID (default), EHC, HOSPITAL_MRN, ...");
    cmd->add_option("--issuer", patient.issuer, "issuer of the identifier, where it needs one");
  }
  recognize->add_option("--item", items, "catalogue item code (repeatable)")->required();
  auto* retests = app.add_subcommand("retests", "re-test reasons and repeats without reason");

  refctl::ConsultFilter consult_filter;
  auto* consults = app.add_subcommand("consults", "teleconsultations and readings, newest first");
  consults->add_option("--institution", consult_filter.institution, "requester or target code");
  consults->add_option("--state", consult_filter.state, "e.g. requested, accepted, reported");
  consults->add_option("--service", consult_filter.service, "e.g. ecg-reading, specialty-opinion");
  consults->add_option("--priority", consult_filter.priority, "emergency, urgent or routine");
  consults->add_option("--from", consult_filter.from, "requested on or after YYYY-MM-DD (UTC+8)");
  consults->add_option("--to", consult_filter.to, "requested before YYYY-MM-DD (UTC+8)");
  consults->add_option("--limit", consult_filter.limit, "at most this many (default 50)");
  auto* consult = app.add_subcommand("consult", "one consult");
  consult->require_subcommand(1);
  auto* consult_show = consult->add_subcommand("show", "history, reports and thread");
  consult_show->alias("get");
  consult_show->add_option("id", id, "broker consult id")->required();

  int within = 30;
  auto* late = app.add_subcommand("late", "referrals and consults late, escalated or due soon");
  late->add_option("--within", within, "also those due within this many minutes (default 30)");

  std::string from, to, html;
  bool csv = false;
  auto* report = app.add_subcommand("report", "the alliance report for a period");
  report->add_option("--from", from, "first day, YYYY-MM-DD (UTC+8)")->required();
  report->add_option("--to", to, "day after the last, YYYY-MM-DD (UTC+8)")->required();
  report->add_flag("--csv", csv, "CSV: one row per institution and one for the alliance");
  report->add_option("--html", html, "write an HTML page with charts to this file");

  auto* audit = app.add_subcommand("audit", "the audit trail (auditors)");
  audit->require_subcommand(1);
  auto* audit_verify = audit->add_subcommand("verify", "walk the hash chain, name a broken entry");
  auto* audit_search = audit->add_subcommand("search", "who touched a patient's data");
  refctl::PatientArgs audited;
  std::string actor, subject;
  uint32_t audit_limit = 100;
  audit_search->add_option("--id", audited.value, "patient identifier value");
  audit_search->add_option("--id-type", audited.type, "RESIDENT_ID (default), EHC, ...");
  audit_search->add_option("--issuer", audited.issuer, "issuer of the identifier");
  audit_search->add_option("--actor", actor, "principal id");
  audit_search->add_option("--subject", subject, "record id (referral, consult, result)");
  audit_search->add_option("--limit", audit_limit, "at most this many (≤1000, default 100)");

  auto* health = app.add_subcommand("health", "gRPC health of the broker");

  CLI11_PARSE(app, argc, argv);
  if (queues->parsed()) return refctl::Queues(g, owner);
  if (watch->parsed()) return refctl::Watch(g, owner, interval, count);
  if (report->parsed()) return refctl::Report(g, from, to, csv, html);
  if (audit_verify->parsed()) return refctl::AuditVerify(g);
  if (audit_search->parsed()) return refctl::AuditSearch(g, audited, actor, subject, audit_limit);
  if (dlq_list->parsed()) return refctl::DlqList(g, queue, group, limit);
  if (dlq_requeue->parsed()) {
    if (!requeue_from.empty()) return refctl::DlqRequeueFrom(g, requeue_from);
    if (queue.empty()) {
      std::cerr << "refctl: dlq requeue needs --queue and --group, or --from FILE\n";
      return 2;
    }
    return refctl::DlqRequeue(g, queue, group, seq);
  }
  if (referrals->parsed()) return refctl::Referrals(g, filter);
  if (referral_show->parsed()) return refctl::ReferralShow(g, id);
  if (results->parsed()) return refctl::Results(g, patient);
  if (recognize->parsed()) return refctl::Recognize(g, patient, items);
  if (retests->parsed()) return refctl::Retests(g);
  if (consults->parsed()) return refctl::Consults(g, consult_filter);
  if (consult_show->parsed()) return refctl::ConsultShow(g, id);
  if (late->parsed()) return refctl::Late(g, within);
  if (health->parsed()) return refctl::Health(g);
  return 2;
}

// The operator's and auditor's view through the real broker and the real refctl: the alliance
// report of a scripted set of journeys (table, JSON and CSV agree on the exact figures), the
// audit trail (verified, tamper named, auditors only), and retention (pruned messages gone,
// the others intact, the queue's share of the store bounded under steady traffic).

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "client/refclient/admin_client.h"
#include "client/refclient/consult_client.h"
#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;
constexpr char kGuhuaiTownship[] = "12411723417581102B";

// "YYYY-MM-DD" in China Standard Time, `days` from today.
std::string ChinaDay(int days) {
  std::time_t t = std::time(nullptr) + 8 * 3600 + days * 86400;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

// Runs a scripted set of journeys: Xiyangdian refers three patients up to the People's
// Hospital (two accepted and completed, one of them then sent back down; one declined for
// capacity); Guhuai refers one to the TCM hospital (accepted) and asks the ECG center for a
// reading (not yet reported).
void RunScript(BrokerProcess& broker) {
  auto xiyangdian = ConnectAs(broker.address(), "xiyangdian-thc");
  auto guhuai = ConnectAs(broker.address(), "guhuai-thc");
  auto people = ConnectAs(broker.address(), "people-hospital");
  auto tcm = ConnectAs(broker.address(), "tcm-hospital");
  CollectingSubscriber people_inbox(*people, kPeopleHospital, "his", 8);
  CollectingSubscriber tcm_inbox(*tcm, kTcmHospital, "his", 8);
  CollectingSubscriber xiyangdian_inbox(*xiyangdian, kXiyangdian, "his", 8);
  refclient::ReferralClient x(*xiyangdian), g(*guhuai), p(*people), t(*tcm);

  std::vector<std::string> ids;
  for (const char* req : {"r1", "r2", "r3"}) {
    auto out = x.Submit(MakeReferral(kXiyangdian, req, v1::ROUTINE, kPeopleHospital));
    ASSERT_TRUE(out.ok()) << out.status();
    ids.push_back(out->referral().id());
  }
  auto r4 = g.Submit(MakeReferral(kGuhuaiTownship, "r4", v1::ROUTINE, kTcmHospital));
  ASSERT_TRUE(r4.ok()) << r4.status();
  for (const auto& id : ids) ASSERT_TRUE(WaitForState(p, id, v1::DELIVERED)) << id;
  ASSERT_TRUE(WaitForState(t, r4->referral().id(), v1::DELIVERED));

  for (int i = 0; i < 2; ++i) {
    auto accept = Act(ids[i], "acc-" + ids[i]);
    accept.mutable_accept();
    ASSERT_TRUE(p.Transition(accept).ok());
  }
  auto decline = Act(ids[2], "dec");
  decline.mutable_decline()->set_reason(v1::NO_CAPACITY);
  ASSERT_TRUE(p.Transition(decline).ok());
  auto accept4 = Act(r4->referral().id(), "acc-4");
  accept4.mutable_accept();
  ASSERT_TRUE(t.Transition(accept4).ok());
  for (int i = 0; i < 2; ++i) {
    auto arrive = Act(ids[i], "arr-" + ids[i]);
    arrive.mutable_arrive();
    ASSERT_TRUE(p.Transition(arrive).ok());
    auto complete = Act(ids[i], "cmp-" + ids[i]);
    complete.mutable_complete()->set_outcome_summary(i == 0 ? "痊愈出院"
                                                            : "病情稳定，转回基层康复");
    ASSERT_TRUE(p.Transition(complete).ok());
  }

  auto up = p.Get(ids[1]);
  ASSERT_TRUE(up.ok());
  v1::Referral down = *up;
  for (auto clear : {&v1::Referral::clear_id, &v1::Referral::clear_state,
                     &v1::Referral::clear_journey_id, &v1::Referral::clear_decision_deadline,
                     &v1::Referral::clear_submitted_at, &v1::Referral::clear_updated_at,
                     &v1::Referral::clear_history, &v1::Referral::clear_to_institution}) {
    (down.*clear)();
  }
  down.set_client_request_id("down-1");
  down.set_direction(v1::DOWN);
  down.mutable_from()->set_institution(kPeopleHospital);
  down.set_continues_referral_id(ids[1]);
  down.set_down_reason(v1::REHABILITATION);
  down.set_follow_up_plan("康复训练");
  auto down_out = p.Submit(down);
  ASSERT_TRUE(down_out.ok()) << down_out.status();
  ASSERT_TRUE(WaitForState(x, down_out->referral().id(), v1::DELIVERED));
  auto t_accept = Act(down_out->referral().id(), "t-acc");
  t_accept.mutable_accept();
  ASSERT_TRUE(x.Transition(t_accept).ok());

  auto consult = refclient::ConsultClient(*guhuai).Request(MakeEcgConsult(kGuhuaiTownship, "c1"));
  ASSERT_TRUE(consult.ok()) << consult.status();
}

TEST(Report, ScriptedJourneysGiveTheSameExactFiguresAsTableJsonAndCsv) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  ASSERT_NO_FATAL_FAILURE(RunScript(broker));
  const std::string period = "report --from " + ChinaDay(-1) + " --to " + ChinaDay(1);

  std::string json;
  ASSERT_EQ(RunRefctl(broker.address(), "--json " + period, &json), 0) << json;
  v1::AllianceReport r;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &r).ok()) << json;
  const auto& t = r.total();
  EXPECT_EQ(t.up_sent(), 4u);
  EXPECT_EQ(t.down_sent(), 1u);
  EXPECT_DOUBLE_EQ(t.down_up_ratio(), 0.25);
  EXPECT_EQ(t.accepted(), 4u);
  EXPECT_EQ(t.declined(), 1u);
  EXPECT_EQ(t.acceptance().count(), 4u);
  ASSERT_EQ(t.decline_reasons_size(), 1);
  EXPECT_EQ(t.decline_reasons(0).reason(), "NO_CAPACITY");
  EXPECT_EQ(t.loops_closed(), 2u);  // completed (one of them also sent back down)
  EXPECT_DOUBLE_EQ(t.loops_closed_share(), 0.5);
  EXPECT_EQ(t.consults_requested(), 1u);
  EXPECT_EQ(t.consults_reported(), 0u);
  EXPECT_EQ(t.deadline_breaches(), 0u);
  ASSERT_GE(r.partnerships_size(), 3);
  EXPECT_EQ(r.partnerships(0).township(), kXiyangdian);
  EXPECT_EQ(r.partnerships(0).county(), kPeopleHospital);
  EXPECT_EQ(r.partnerships(0).total(), 4u);
  EXPECT_EQ(r.partnerships(1).county(), kTcmHospital);
  EXPECT_EQ(r.partnerships(1).total(), 1u);
  EXPECT_EQ(r.partnerships(2).county(), kEcgCenter);
  EXPECT_EQ(r.partnerships(2).consults(), 1u);
  for (int i = 3; i < r.partnerships_size(); ++i) EXPECT_EQ(r.partnerships(i).total(), 0u);

  std::string table;
  ASSERT_EQ(RunRefctl(broker.address(), period, &table), 0) << table;
  EXPECT_NE(table.find("Headline: 4 up, 1 down (down/up 0.25); loops closed 50.0%"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("NO_CAPACITY      1"), std::string::npos) << table;
  EXPECT_NE(table.find("on paper only"), std::string::npos) << table;

  std::string csv;
  ASSERT_EQ(RunRefctl(broker.address(), period + " --csv", &csv), 0) << csv;
  auto line_of = [&csv](const std::string& prefix) {
    size_t at = csv.find("\n" + prefix);
    if (at == std::string::npos) return std::string();
    return csv.substr(at + 1, csv.find('\n', at + 1) - at - 1);
  };
  std::string total = line_of("pingyu,");
  // up_sent, up_received, down_sent, down_received, ratio, accepted, declined.
  EXPECT_EQ(total.find("pingyu,平舆县紧密型县域医共体,ALLIANCE,4,4,1,1,0.2500,4,1,"), 0u) << csv;
  std::string people = line_of(std::string(kPeopleHospital) + ",");
  EXPECT_EQ(
      people.find(std::string(kPeopleHospital) + ",平舆县人民医院,COUNTY,0,3,1,0,0.3333,2,1,"), 0u)
      << csv;

  std::string html_path = broker.dir() + "/report.html";
  std::string out;
  ASSERT_EQ(RunRefctl(broker.address(), period + " --html " + html_path, &out), 0) << out;
  EXPECT_TRUE(std::filesystem::file_size(html_path) > 1000);

  // Only an alliance's operator or auditor reads its report.
  out.clear();
  EXPECT_EQ(RunRefctl(broker.address(), "--as xiyangdian-thc " + period, &out), 1);
  EXPECT_NE(out.find("PERMISSION_DENIED"), std::string::npos) << out;
}

TEST(Audit, ChainVerifiesAfterAScenarioAndTheAlteredEntryIsNamed) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  v1::Referral referral = MakeReferral(kXiyangdian, "audited", v1::ROUTINE, kPeopleHospital);
  std::string referral_id;
  {
    auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
    auto hospital = ConnectAs(broker.address(), "people-hospital");
    CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 8);
    refclient::ReferralClient client(*clinic);
    auto out = client.Submit(referral);
    ASSERT_TRUE(out.ok()) << out.status();
    referral_id = out->referral().id();
    ASSERT_TRUE(inbox.WaitFor(1, 10));
    ASSERT_TRUE(refclient::ReferralClient(*hospital).Get(referral_id).ok());
    // Another clinic may not read it, and that attempt is on record too.
    auto other = ConnectAs(broker.address(), "guhuai-thc");
    EXPECT_EQ(refclient::ReferralClient(*other).Get(referral_id).status().code(),
              absl::StatusCode::kPermissionDenied);
    // Only auditors read the trail.
    EXPECT_EQ(refclient::AdminClient(*clinic).VerifyAudit().status().code(),
              absl::StatusCode::kPermissionDenied);
  }
  std::string out;
  EXPECT_EQ(RunRefctl(broker.address(), "audit verify", &out), 1) << out;  // the operator
  EXPECT_NE(out.find("PERMISSION_DENIED"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(RunRefctl(broker.address(), "--as auditor audit verify", &out), 0) << out;
  EXPECT_NE(out.find("audit chain OK"), std::string::npos) << out;

  // Who touched the patient's data: the submit, the delivery, the reads, the refused read.
  const auto& id = referral.patient().identifiers(0);
  out.clear();
  ASSERT_EQ(RunRefctl(broker.address(),
                      "--as auditor audit search --id " + id.value() + " --id-type " +
                          v1::PatientIdType_Name(id.type()),
                      &out),
            0)
      << out;
  EXPECT_NE(out.find("124117234175811018  SubmitReferral"), std::string::npos) << out;
  EXPECT_NE(out.find("12411723417580001B  DELIVER"), std::string::npos) << out;
  EXPECT_NE(out.find("12411723417580001B  GetReferral"), std::string::npos) << out;
  EXPECT_NE(out.find("12411723417581102B  GetReferral"), std::string::npos) << out;
  EXPECT_NE(out.find("PERMISSION_DENIED"), std::string::npos) << out;
  // One entry per act: the submit's entry was written with the referral, not again after it.
  EXPECT_EQ(out.find("SubmitReferral"), out.rfind("SubmitReferral")) << out;
  // No patient identity in the trail itself: only the key.
  EXPECT_EQ(out.find(id.value()), std::string::npos) << out;

  // Someone with access to the file alters entry 3 (the triggers stop SQL, not a determined
  // insider): the chain names it.
  ASSERT_EQ(broker.Stop(), 0);
  ASSERT_EQ(broker.ExecSql(broker.postgres()
                               ? "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;"
                                 "UPDATE audit_log SET actor='someone-else' WHERE seq=3;"
                               : "DROP TRIGGER audit_log_no_update;"
                                 "UPDATE audit_log SET actor='someone-else' WHERE seq=3;"),
            "");
  ASSERT_TRUE(broker.Start().ok());
  out.clear();
  EXPECT_EQ(RunRefctl(broker.address(), "--as auditor audit verify", &out), 3) << out;
  EXPECT_NE(out.find("audit chain BROKEN at entry 3"), std::string::npos) << out;
  EXPECT_NE(out.find("altered"), std::string::npos) << out;
}

// The queue tables at one moment: the pages they (messages, their fan-out, and their indexes)
// take in the store, and the messages they hold, read in one snapshot so that a prune between
// the two reads cannot pair one moment's pages with another's messages.
struct QueueFootprint {
  int64_t pages = -1;
  int64_t messages = -1;
};

QueueFootprint QueueFootprintOf(const std::string& db_path) {
  QueueFootprint out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return out;
  }
  sqlite3_busy_timeout(db, 2000);
  auto scalar = [db](const char* sql) -> int64_t {
    sqlite3_stmt* st = nullptr;
    int64_t value = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      value = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return value;
  };
  if (sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr) == SQLITE_OK) {
    out.messages = scalar("SELECT COUNT(*) FROM messages");
    out.pages = scalar(
        "SELECT COUNT(*) FROM dbstat WHERE name IN ('messages', 'group_messages', "
        "'messages_queue', 'group_messages_pending', 'group_messages_dead', "
        "'group_messages_seq', 'sqlite_autoindex_group_messages_1')");
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  sqlite3_close(db);
  return out;
}

// Acked messages kept 1 s and pruned every second (leases of 1 s, as in every BrokerConfig).
BrokerConfig PruningEverySecond() {
  BrokerConfig config;
  config.delivery_toml = "retention_seconds = 1\nprune_interval_s = 1\n";
  return config;
}

TEST(Retention, PrunedMessagesAreGoneTheOthersIntactAndTheQueueStopsGrowing) {
  BrokerProcess broker(PruningEverySecond());
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  refclient::ReferralClient client(*clinic);
  // A referral to a hospital whose system never subscribed: never acked, never pruned.
  auto waiting = client.Submit(MakeReferral(kXiyangdian, "waiting", v1::ROUTINE, kTcmHospital));
  ASSERT_TRUE(waiting.ok()) << waiting.status();

  CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 32);
  // The clinic's system takes its updates too (a queue nobody consumes keeps everything, so
  // that a system subscribing later misses nothing).
  CollectingSubscriber updates(*clinic, kXiyangdian, "his", 32, nullptr, v1::REFERRAL_UPDATES);
  int sent = 0;
  auto traffic = [&](double seconds) {
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
      auto out = client.Submit(MakeReferral(kXiyangdian, "steady-" + std::to_string(sent),
                                            v1::ROUTINE, kPeopleHospital));
      ASSERT_TRUE(out.ok()) << out.status();
      ++sent;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  ASSERT_NO_FATAL_FAILURE(traffic(4));
  // The pages part is the SQLite file's (freed pages reused, incremental vacuum); on PostgreSQL
  // reusing dead rows' space is autovacuum's job, outside the broker. The pruning is checked on
  // both.
  const bool pages = !broker.postgres();
  QueueFootprint early = pages ? QueueFootprintOf(broker.db_path()) : QueueFootprint{1, 1};
  int sent_early = sent;
  ASSERT_NO_FATAL_FAILURE(traffic(8));
  ASSERT_TRUE(inbox.WaitFor(static_cast<size_t>(sent), 20)) << inbox.result();
  QueueFootprint late = pages ? QueueFootprintOf(broker.db_path()) : QueueFootprint{1, 1};
  if (pages)
    std::printf(
        "retention: queue after %d sent: %lld pages, %lld messages; after %d sent: %lld pages, "
        "%lld messages\n",
        sent_early, static_cast<long long>(early.pages), static_cast<long long>(early.messages),
        sent, static_cast<long long>(late.pages), static_cast<long long>(late.messages));
  ASSERT_GT(early.pages, 0);
  ASSERT_GT(early.messages, 0);
  // Three times the traffic, but the queue's pages follow the messages it holds, not those it
  // has carried: freed pages are reused (and returned to the file system by incremental
  // vacuum). A prune that runs late on a busy machine leaves more messages, and so more pages,
  // at that moment; the pages per message held stay where they were.
  double held_ratio =
      std::max(1.0, static_cast<double>(late.messages) / static_cast<double>(early.messages));
  EXPECT_LE(static_cast<double>(late.pages),
            (static_cast<double>(early.pages) * 1.5 + 8) * held_ratio);
  // Messages kept: those younger than retention plus the prune interval, and the waiting one
  // (each referral is two messages: the hospital's copy and the clinic's update). On a busy
  // machine the next prune may be a few seconds away: wait for it.
  int64_t messages = broker.CountRows("messages");
  for (int i = 0; i < 50 && messages >= sent / 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    messages = broker.CountRows("messages");
  }
  EXPECT_LT(messages, sent / 2);
  // The pruned are gone, their referrals are not; the unacked one is still delivered.
  EXPECT_TRUE(client.Get(inbox.deliveries().front().referral().id()).ok());
  auto tcm = ConnectAs(broker.address(), "tcm-hospital");
  CollectingSubscriber tcm_inbox(*tcm, kTcmHospital, "his", 8);
  ASSERT_TRUE(tcm_inbox.WaitFor(1, 10));
  EXPECT_EQ(tcm_inbox.deliveries()[0].referral().id(), waiting->referral().id());
}

// A delivery whose lease ran out goes out again, and a subscriber that answers both copies
// acks the second after the first ack, perhaps after retention pruned the message. That ack is
// a duplicate, not an error: the stream stays open and goes on delivering. (Pruning counts from
// the ack, so this needs an ack that comes more than the retention after the first one.)
TEST(Retention, AnAckOfARedeliveredMessageThatWasPrunedKeepsTheStreamOpen) {
  BrokerProcess broker(PruningEverySecond());
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  refclient::ReferralClient client(*clinic);
  CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 8,
                             [](const v1::Delivery&) { return refclient::Decision::None(); });
  auto held = client.Submit(MakeReferral(kXiyangdian, "held", v1::ROUTINE, kPeopleHospital));
  ASSERT_TRUE(held.ok()) << held.status();
  // Unanswered, the lease runs out and the message comes again.
  ASSERT_TRUE(inbox.WaitFor(2, 15)) << inbox.result();
  std::vector<v1::Delivery> copies = inbox.deliveries();
  const uint64_t sequence = copies[0].sequence();
  ASSERT_EQ(copies[1].sequence(), sequence);
  EXPECT_EQ(copies[1].attempt(), 2u);
  ASSERT_TRUE(inbox.Ack(sequence));  // the first copy's answer
  const std::string row = "messages WHERE seq = " + std::to_string(sequence);
  int64_t left = broker.CountRows(row.c_str());
  for (int i = 0; i < 150 && left != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    left = broker.CountRows(row.c_str());
  }
  ASSERT_EQ(left, 0) << "the acked message was not pruned";
  ASSERT_TRUE(inbox.Ack(sequence));  // the second copy's answer, after the prune
  auto next = client.Submit(MakeReferral(kXiyangdian, "next", v1::ROUTINE, kPeopleHospital));
  ASSERT_TRUE(next.ok()) << next.status();
  bool arrived = false;
  for (size_t n = inbox.deliveries().size() + 1; !arrived && inbox.WaitFor(n, 10); ++n) {
    std::vector<v1::Delivery> all = inbox.deliveries();
    arrived = std::any_of(all.begin(), all.end(), [&](const v1::Delivery& d) {
      return d.referral().id() == next->referral().id();
    });
  }
  EXPECT_TRUE(arrived) << "the stream ended: " << inbox.result();
}

}  // namespace
}  // namespace refbroker::testing

// Store conformance: every operation of the Store interface, including its failure cases, run
// against each implementation: SQLite, and PostgreSQL on the throw-away cluster the pg_cluster
// test fixture starts (tests/support/pg-cluster.sh), one PostgreSQL schema per test.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "broker/storage/audit_scope.h"
#include "broker/storage/postgres_store.h"
#include "broker/storage/sqlite_store.h"
#include "broker/storage/store.h"
#include "tests/support/audit_entries.h"
#include "tests/support/pg_cluster.h"

namespace refbroker::storage {
namespace {

using refbroker::testing::AuditEntry;
using refbroker::testing::TestClusterConninfo;

struct StoreFactory {
  std::string name;
  // Opens (or reopens) the store kept under `dir`.
  std::function<absl::StatusOr<std::unique_ptr<Store>>(const std::string& dir)> open;
  // Removes what open() kept outside `dir` (nothing for SQLite).
  std::function<void(const std::string& dir)> drop = [](const std::string&) {};
};

void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

StoreFactory SqliteFactory() {
  return {"sqlite", [](const std::string& dir) -> absl::StatusOr<std::unique_ptr<Store>> {
            SqliteOptions o;
            o.path = dir + "/store.db";
            auto s = SqliteStore::Open(o);
            if (!s.ok()) return s.status();
            return std::unique_ptr<Store>(std::move(*s));
          }};
}

std::string SchemaFor(const std::string& dir) {
  std::ostringstream name;
  name << "t_" << std::hex << std::hash<std::string>()(dir);
  return name.str();
}

StoreFactory PostgresFactory() {
  StoreFactory f;
  f.name = "postgres";
  f.open = [](const std::string& dir) -> absl::StatusOr<std::unique_ptr<Store>> {
    PostgresOptions o;
    o.conninfo = TestClusterConninfo();
    if (o.conninfo.empty()) {
      return absl::FailedPreconditionError(
          "no PostgreSQL test cluster: " REFBROKER_PG_STATE
          " is missing (the pg_cluster fixture starts one: run the tests with ctest)");
    }
    o.schema = SchemaFor(dir);
    // The cases' institutions are Pingyu's: their rows go to its partitions (the broker passes
    // its registry's alliances the same way).
    o.alliances = {"pingyu"};
    o.alliance_of = [](const std::string& code) -> std::string {
      return code.rfind("124117", 0) == 0 ? "pingyu" : "";
    };
    auto s = PostgresStore::Open(o);
    if (!s.ok()) return s.status();
    return std::unique_ptr<Store>(std::move(*s));
  };
  f.drop = [](const std::string& dir) {
    (void)PostgresStore::DropSchema(TestClusterConninfo(), SchemaFor(dir));
  };
  return f;
}

constexpr Micros kT0 = 1795000000LL * 1000000;
constexpr Micros kSecond = 1000000;
const std::string kQueue = "12411723417580001B/referrals";

class StoreConformance : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    // The test's name carries its store ("Name/sqlite"): one directory, not a directory in one.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');
    dir_ = (std::filesystem::temp_directory_path() /
            ("refbroker-store-" + std::to_string(getpid()) + "-" + name))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    GetParam().drop(dir_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    GetParam().drop(dir_);
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    auto s = GetParam().open(dir_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }

  ReferralRecord Referral(const std::string& id, const std::string& request_id,
                          const std::string& sender = "124117234175811018", int priority = 3) {
    ReferralRecord r;
    r.id = id;
    r.sender = sender;
    r.receiver = "12411723417580001B";
    r.client_request_id = request_id;
    r.request_digest = "digest-" + request_id;
    r.state = 1;
    r.priority = priority;
    r.submitted_at = kT0;
    r.updated_at = kT0;
    r.body = "body-" + id;
    r.journey_id = "jny-" + id;
    r.alliance = "pingyu";
    r.decision_due_at = kT0 + 600 * kSecond;
    return r;
  }

  static ReferralEventRecord Event(const std::string& referral_id, const std::string& actor = "",
                                   const std::string& request_id = "", int action = 1) {
    return ReferralEventRecord{referral_id, actor, request_id, action, kT0, "event"};
  }

  absl::StatusOr<SubmitResult> SubmitRecord(const ReferralRecord& r, const std::string& subject,
                                            int priority = 3) {
    return store_->SubmitReferral(r, Event(r.id),
                                  {NewMessage{kQueue, priority, subject, "payload-" + subject}});
  }

  // Submits a referral with its message; returns the message's sequence via a lease-free scan.
  void Submit(const std::string& id, int priority = 3, Micros at = kT0) {
    ReferralRecord r = Referral(id, "req-" + id, "124117234175811018", priority);
    r.submitted_at = at;
    auto res = SubmitRecord(r, id, priority);
    ASSERT_TRUE(res.ok()) << res.status();
    ASSERT_FALSE(res->duplicate);
  }

  static LeaseRequest RequestFor(const std::string& group, size_t n, Micros now,
                                 Micros deadline = 30, uint32_t max_attempts = 3) {
    LeaseRequest req;
    req.queue = kQueue;
    req.group = group;
    req.max_messages = n;
    req.now = now;
    req.lease_until = now + deadline * kSecond;
    req.max_attempts = max_attempts;
    return req;
  }

  LeaseResult Lease(const std::string& group, size_t n, Micros now, Micros deadline = 30,
                    uint32_t max_attempts = 3) {
    auto r = store_->Lease(RequestFor(group, n, now, deadline, max_attempts));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : LeaseResult{};
  }

  std::vector<std::string> Subjects(const LeaseResult& r) {
    std::vector<std::string> out;
    for (const auto& m : r.messages) out.push_back(m.subject_id);
    return out;
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreConformance, SubmitStoresReferralAndItsMessage) {
  Submit("ref-1");
  auto got = store_->GetReferral("ref-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->body, "body-ref-1");
  EXPECT_EQ(got->receiver, "12411723417580001B");
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  auto leased = Lease("his", 10, kT0);
  ASSERT_EQ(leased.messages.size(), 1u);
  EXPECT_EQ(leased.messages[0].payload, "payload-ref-1");
  EXPECT_EQ(leased.messages[0].attempt, 1u);
  EXPECT_EQ(leased.messages[0].enqueued_at, kT0);
}

TEST_P(StoreConformance, SameRequestIdReturnsTheOriginalAndWritesNothing) {
  Submit("ref-1");
  ReferralRecord again = Referral("ref-2", "req-ref-1");
  again.request_digest = "digest-req-ref-1";
  auto res = SubmitRecord(again, "ref-2");
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_TRUE(res->duplicate);
  EXPECT_EQ(res->referral.id, "ref-1");
  EXPECT_TRUE(absl::IsNotFound(store_->GetReferral("ref-2").status()));
  auto stats = store_->ListQueueStats();
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].retained, 1u);
}

TEST_P(StoreConformance, SameRequestIdWithOtherContentIsAlreadyExists) {
  Submit("ref-1");
  ReferralRecord other = Referral("ref-2", "req-ref-1");
  other.request_digest = "something else";
  auto res = SubmitRecord(other, "ref-2");
  EXPECT_TRUE(absl::IsAlreadyExists(res.status())) << res.status();
  EXPECT_TRUE(absl::IsNotFound(store_->GetReferral("ref-2").status()));
}

TEST_P(StoreConformance, RequestIdsAreScopedBySender) {
  Submit("ref-1");
  ReferralRecord other = Referral("ref-2", "req-ref-1", "12411723417581102B");
  auto res = SubmitRecord(other, "ref-2");
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_FALSE(res->duplicate);
}

TEST_P(StoreConformance, GetUnknownReferralIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(store_->GetReferral("ref-none").status()));
}

ReferralChange ChangeOf(const ReferralRecord& r, int64_t version, int state,
                        const std::string& request_id, std::vector<NewMessage> messages = {}) {
  ReferralChange c;
  c.referral_id = r.id;
  c.expected_version = version;
  c.state = state;
  c.receiver = r.receiver;
  c.decision_due_at = 0;
  c.updated_at = kT0 + kSecond;
  c.body = "body-v" + std::to_string(version + 1);
  c.event = ReferralEventRecord{r.id, r.receiver, request_id, 3, kT0 + kSecond, "accept"};
  c.messages = std::move(messages);
  return c;
}

TEST_P(StoreConformance, SubmitKeepsTheIndexedFieldsAndTheFirstEvent) {
  Submit("ref-1");
  auto got = store_->GetReferral("ref-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->journey_id, "jny-ref-1");
  EXPECT_EQ(got->alliance, "pingyu");
  EXPECT_EQ(got->decision_due_at, kT0 + 600 * kSecond);
  EXPECT_EQ(got->version, 1);
  auto events = store_->ListReferralEvents("ref-1");
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].body, "event");
}

TEST_P(StoreConformance, ChangeAppliesStateEventAndMessagesAtomically) {
  Submit("ref-1");
  ReferralRecord r = *store_->GetReferral("ref-1");
  const std::string updates = "124117234175811018/referral-updates";
  auto res = store_->ChangeReferral(
      ChangeOf(r, 1, 3, "acc-1", {NewMessage{updates, 3, "ref-1", "update"}}));
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_FALSE(res->duplicate);
  auto after = store_->GetReferral("ref-1");
  EXPECT_EQ(after->state, 3);
  EXPECT_EQ(after->version, 2);
  EXPECT_EQ(after->decision_due_at, 0);
  EXPECT_EQ(after->body, "body-v2");
  EXPECT_EQ(store_->ListReferralEvents("ref-1")->size(), 2u);
  auto stats = store_->ListQueueStats();
  bool found = false;
  for (const auto& q : *stats) found |= q.queue == updates && q.retained == 1;
  EXPECT_TRUE(found);
  auto next = store_->NextDecisionDue();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
}

TEST_P(StoreConformance, AStaleVersionIsAbortedAndWritesNothing) {
  Submit("ref-1");
  ReferralRecord r = *store_->GetReferral("ref-1");
  ASSERT_TRUE(store_->ChangeReferral(ChangeOf(r, 1, 3, "a")).ok());
  auto stale = store_->ChangeReferral(ChangeOf(r, 1, 4, "b", {NewMessage{kQueue, 3, "x", "y"}}));
  EXPECT_TRUE(absl::IsAborted(stale.status())) << stale.status();
  EXPECT_EQ(store_->GetReferral("ref-1")->state, 3);
  EXPECT_EQ(store_->ListReferralEvents("ref-1")->size(), 2u);
  EXPECT_EQ((*store_->ListQueueStats())[0].retained, 1u);
  auto missing = ReferralRecord(r);
  missing.id = "ref-none";
  EXPECT_TRUE(absl::IsNotFound(store_->ChangeReferral(ChangeOf(missing, 1, 3, "c")).status()));
}

TEST_P(StoreConformance, AChangeRequestIdIsIdempotentPerActor) {
  Submit("ref-1");
  Submit("ref-2");
  ReferralRecord r = *store_->GetReferral("ref-1");
  ASSERT_TRUE(store_->ChangeReferral(ChangeOf(r, 1, 3, "same")).ok());
  auto again = store_->ChangeReferral(ChangeOf(r, 2, 3, "same"));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(store_->GetReferral("ref-1")->version, 2);
  ReferralRecord r2 = *store_->GetReferral("ref-2");
  EXPECT_TRUE(absl::IsAlreadyExists(store_->ChangeReferral(ChangeOf(r2, 1, 3, "same")).status()));
  auto found = store_->FindReferralEvent(r.receiver, "same");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->referral_id, "ref-1");
  EXPECT_FALSE(store_->FindReferralEvent(r.receiver, "other")->has_value());
}

TEST_P(StoreConformance, ListReferralsFiltersAndPagesNewestFirst) {
  for (int i = 0; i < 5; ++i) Submit("ref-" + std::to_string(i), 3, kT0 + i * kSecond);
  ReferralRecord other = Referral("ref-x", "req-x", "12411723417581102B");
  other.submitted_at = kT0 + 10 * kSecond;
  other.alliance = "elsewhere";
  ASSERT_TRUE(SubmitRecord(other, "ref-x").ok());

  ReferralQuery q;
  q.party = "124117234175811018";
  q.limit = 2;
  auto page1 = store_->ListReferrals(q);
  ASSERT_TRUE(page1.ok());
  ASSERT_EQ(page1->size(), 2u);
  EXPECT_EQ((*page1)[0].id, "ref-4");
  EXPECT_EQ((*page1)[1].id, "ref-3");
  q.after_submitted_at = (*page1)[1].submitted_at;
  q.after_id = (*page1)[1].id;
  q.limit = 10;
  auto page2 = store_->ListReferrals(q);
  ASSERT_EQ(page2->size(), 3u);
  EXPECT_EQ((*page2)[0].id, "ref-2");

  ReferralQuery by_alliance;
  by_alliance.alliance = "elsewhere";
  EXPECT_EQ(store_->ListReferrals(by_alliance)->size(), 1u);
  ReferralQuery by_time;
  by_time.submitted_from = kT0 + kSecond;
  by_time.submitted_to = kT0 + 3 * kSecond;
  EXPECT_EQ(store_->ListReferrals(by_time)->size(), 2u);
  ReferralQuery by_journey;
  by_journey.journey_id = "jny-ref-2";
  EXPECT_EQ(store_->ListReferrals(by_journey)->size(), 1u);
  ReferralQuery by_state;
  by_state.state = 5;
  EXPECT_TRUE(store_->ListReferrals(by_state)->empty());
}

// An institution's referrals are those it sends and those it receives, merged newest first,
// paged across both, with the other filters applied to each side.
TEST_P(StoreConformance, ListReferralsOfAPartyMergesWhatItSendsAndWhatItReceives) {
  const std::string hospital = "12411723417580001B";  // Referral()'s receiver
  for (int i = 0; i < 6; ++i) {
    // Even: a clinic refers up to the hospital; odd: the hospital refers down to a clinic.
    ReferralRecord r = Referral("ref-" + std::to_string(i), "req-" + std::to_string(i),
                                i % 2 ? hospital : "124117234175811018");
    if (i % 2) r.receiver = "12411723417581102B";
    r.direction = i % 2 ? 2 : 1;
    r.submitted_at = kT0 + i * kSecond;
    ASSERT_TRUE(SubmitRecord(r, r.id).ok());
  }
  auto ids = [](const std::vector<ReferralRecord>& v) {
    std::vector<std::string> out;
    for (const auto& r : v) out.push_back(r.id);
    return out;
  };
  ReferralQuery q;
  q.party = hospital;
  q.limit = 3;
  auto page1 = store_->ListReferrals(q);
  ASSERT_TRUE(page1.ok()) << page1.status();
  EXPECT_EQ(ids(*page1), (std::vector<std::string>{"ref-5", "ref-4", "ref-3"}));
  q.after_submitted_at = page1->back().submitted_at;
  q.after_id = page1->back().id;
  EXPECT_EQ(ids(*store_->ListReferrals(q)), (std::vector<std::string>{"ref-2", "ref-1", "ref-0"}));
  ReferralQuery down;
  down.party = hospital;
  down.direction = 2;
  EXPECT_EQ(ids(*store_->ListReferrals(down)),
            (std::vector<std::string>{"ref-5", "ref-3", "ref-1"}));
  ReferralQuery with_clinic;  // the hospital's referrals with one clinic, either way
  with_clinic.party = hospital;
  with_clinic.institution = "12411723417581102B";
  EXPECT_EQ(ids(*store_->ListReferrals(with_clinic)),
            (std::vector<std::string>{"ref-5", "ref-3", "ref-1"}));
  ReferralQuery clinic_alone;  // an operator's filter: one institution, either side
  clinic_alone.institution = "124117234175811018";
  EXPECT_EQ(ids(*store_->ListReferrals(clinic_alone)),
            (std::vector<std::string>{"ref-4", "ref-2", "ref-0"}));
  ReferralQuery journey;  // a journey, asked by a party to it and by one that is not
  journey.journey_id = "jny-ref-3";
  journey.party = hospital;
  EXPECT_EQ(ids(*store_->ListReferrals(journey)), std::vector<std::string>{"ref-3"});
  journey.party = "124117234175811018";
  EXPECT_TRUE(store_->ListReferrals(journey)->empty());
}

TEST_P(StoreConformance, AckedButUndeliveredReferralsAreFoundForTheStartUpSweep) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("acked");
  Submit("waiting");
  auto leased = Lease("his", 10, kT0);
  for (const auto& m : leased.messages) {
    if (m.subject_id == "acked") {
      ASSERT_TRUE(store_->Ack(kQueue, "his", m.sequence, kT0).ok());
    }
  }
  auto found = store_->ListAckedButUndelivered(10);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].first, "acked");
  EXPECT_EQ((*found)[0].second, "12411723417580001B");
  ReferralRecord r = *store_->GetReferral("acked");
  ASSERT_TRUE(store_->ChangeReferral(ChangeOf(r, 1, 2, "")).ok());  // now DELIVERED
  EXPECT_TRUE(store_->ListAckedButUndelivered(10)->empty());
}

// Once a sweep found nothing, later starts skip the search: what it would find now could only
// come from an ack without its DELIVERED transition, which this version never writes (the ack
// below stands for one an older version wrote after the sweep).
TEST_P(StoreConformance, TheStartUpSweepIsSkippedOnceItFoundNothing) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("acked");
  auto found = store_->ListAckedButUndelivered(10);  // a new store is to be swept once
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(found->empty());
  ASSERT_TRUE(store_->FinishDeliverySweep().ok());
  for (const auto& m : Lease("his", 10, kT0).messages) {
    ASSERT_TRUE(store_->Ack(kQueue, "his", m.sequence, kT0).ok());
  }
  found = store_->ListAckedButUndelivered(10);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(found->empty());
  EXPECT_EQ(store_->GetReferral("acked")->state, 1);
  ASSERT_TRUE(store_->FinishDeliverySweep().ok());  // again: nothing to do, no error
}

TEST_P(StoreConformance, AReferralAckedByTwoGroupsIsFoundOnceForTheStartUpSweep) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "archive", kT0).ok());
  Submit("acked twice");
  for (const char* group : {"his", "archive"}) {
    for (const auto& m : Lease(group, 10, kT0).messages) {
      ASSERT_TRUE(store_->Ack(kQueue, group, m.sequence, kT0).ok());
    }
  }
  auto found = store_->ListAckedButUndelivered(10);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].first, "acked twice");
}

// An ack's follow-up (a referral's DELIVERED transition) commits with the ack: the referral
// changes, its event and its update are written, and the start-up sweep has nothing to find.
TEST_P(StoreConformance, AFirstAckWritesItsFollowUpInTheSameTransaction) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  Submit("ref-2");
  auto leased = Lease("his", 10, kT0).messages;
  ASSERT_EQ(leased.size(), 2u);
  const std::string updates = "124117234175811018/referral-updates";
  std::vector<std::string> seen;  // the records the follow-up was given
  AckFollowUp follow_up = [&](const ReferralRecord& r) -> std::optional<ReferralChange> {
    seen.push_back(r.id + "@" + std::to_string(r.version));
    if (r.id == "ref-2") return std::nullopt;  // does not apply: nothing written
    return ChangeOf(r, r.version, 2, "", {NewMessage{updates, 3, r.id, "delivered"}});
  };
  auto acked = store_->AckBatch(kQueue, "his", {leased[0].sequence, leased[1].sequence},
                                kT0 + kSecond, follow_up);
  ASSERT_TRUE(acked.ok()) << acked.status();
  ASSERT_EQ(acked->size(), 2u);
  EXPECT_EQ(seen, (std::vector<std::string>{"ref-1@1", "ref-2@1"}));
  ASSERT_TRUE((*acked)[0].follow_up.has_value());
  EXPECT_EQ((*acked)[0].follow_up->referral_id, "ref-1");
  EXPECT_FALSE((*acked)[1].follow_up.has_value());
  EXPECT_EQ(store_->GetReferral("ref-1")->state, 2);
  EXPECT_EQ(store_->GetReferral("ref-1")->version, 2);
  EXPECT_EQ(store_->ListReferralEvents("ref-1")->size(), 2u);
  EXPECT_EQ(store_->GetReferral("ref-2")->state, 1);
  EXPECT_EQ(store_->ListReferralEvents("ref-2")->size(), 1u);
  bool update_queued = false;
  auto stats = store_->ListQueueStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  for (const auto& q : *stats) update_queued |= q.queue == updates && q.retained == 1;
  EXPECT_TRUE(update_queued);
  auto undelivered = store_->ListAckedButUndelivered(10);
  ASSERT_TRUE(undelivered.ok());
  ASSERT_EQ(undelivered->size(), 1u);  // ref-2 only: its follow-up did not apply
  EXPECT_EQ((*undelivered)[0].first, "ref-2");

  // Acked again: not a first ack, the follow-up is not asked.
  seen.clear();
  auto again = store_->AckBatch(kQueue, "his", {leased[0].sequence}, kT0 + 2 * kSecond, follow_up);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(seen.empty());
  EXPECT_FALSE((*again)[0].follow_up.has_value());
  EXPECT_EQ(store_->GetReferral("ref-1")->version, 2);
}

// A follow-up whose write fails takes its ack with it: the ack is not half-written.
TEST_P(StoreConformance, AnAckWhoseFollowUpFailsIsNotWrittenEither) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  auto leased = Lease("his", 10, kT0).messages;
  ASSERT_EQ(leased.size(), 1u);
  AckFollowUp stale = [&](const ReferralRecord& r) -> std::optional<ReferralChange> {
    return ChangeOf(r, r.version + 5, 2, "");  // a version the row does not have
  };
  auto acked = store_->AckBatch(kQueue, "his", {leased[0].sequence}, kT0 + kSecond, stale);
  EXPECT_FALSE(acked.ok());
  EXPECT_EQ(store_->GetReferral("ref-1")->state, 1);
  auto retry = store_->AckBatch(kQueue, "his", {leased[0].sequence}, kT0 + kSecond, nullptr);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE((*retry)[0].first_ack) << "the failed ack was written";
}

TEST_P(StoreConformance, DueReferralsComeEarliestFirst) {
  Submit("late", 3, kT0);
  ReferralRecord early = Referral("early", "req-early");
  early.decision_due_at = kT0 + 10 * kSecond;
  ASSERT_TRUE(SubmitRecord(early, "early").ok());
  EXPECT_EQ(**store_->NextDecisionDue(), kT0 + 10 * kSecond);
  EXPECT_TRUE(store_->ListDueReferrals(kT0, 10)->empty());
  auto due = store_->ListDueReferrals(kT0 + 700 * kSecond, 10);
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[0].id, "early");
}

TEST_P(StoreConformance, ANewGroupReceivesTheBacklog) {
  Submit("ref-1");
  Submit("ref-2");
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());  // idempotent
  EXPECT_EQ(Subjects(Lease("his", 10, kT0)), (std::vector<std::string>{"ref-1", "ref-2"}));
}

TEST_P(StoreConformance, LeaseOrdersByPriorityThenArrival) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("routine-1", 3);
  Submit("urgent-1", 2);
  Submit("routine-2", 3);
  Submit("emergency-1", 1);
  Submit("urgent-2", 2);
  EXPECT_EQ(
      Subjects(Lease("his", 10, kT0)),
      (std::vector<std::string>{"emergency-1", "urgent-1", "urgent-2", "routine-1", "routine-2"}));
}

TEST_P(StoreConformance, LeasedMessagesAreHiddenUntilTheirDeadline) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  Submit("ref-2");
  auto first = Lease("his", 1, kT0, 30);
  EXPECT_EQ(Subjects(first), std::vector<std::string>{"ref-1"});
  EXPECT_EQ(Subjects(Lease("his", 10, kT0 + kSecond, 30)), std::vector<std::string>{"ref-2"});
  auto none = Lease("his", 10, kT0 + 2 * kSecond);
  EXPECT_TRUE(none.messages.empty());
  ASSERT_TRUE(none.next_visible_at.has_value());
  EXPECT_EQ(*none.next_visible_at, kT0 + 30 * kSecond);
  auto again = Lease("his", 10, kT0 + 30 * kSecond + 1);
  ASSERT_EQ(again.messages.size(), 1u);
  EXPECT_EQ(again.messages[0].subject_id, "ref-1");
  EXPECT_EQ(again.messages[0].attempt, 2u);
}

TEST_P(StoreConformance, ExpiredLeaseAtTheAttemptLimitBecomesADeadLetter) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("poison");
  Submit("next");
  Micros t = kT0;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto r = Lease("his", 1, t, 10, 2);
    ASSERT_EQ(Subjects(r), std::vector<std::string>{"poison"});
    t += 11 * kSecond;
  }
  // Two attempts used: the poison message is dead and does not block the next one.
  EXPECT_EQ(Subjects(Lease("his", 1, t, 10, 2)), std::vector<std::string>{"next"});
  auto dead = store_->ListDeadLetters(DeadLetterFilter{kQueue, "his", 10});
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].subject_id, "poison");
  EXPECT_EQ((*dead)[0].attempts, 2u);
  EXPECT_EQ((*dead)[0].last_error, "ack deadline exceeded");
}

TEST_P(StoreConformance, AckBatchAcksTheKnownOnesAndNamesTheUnknown) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  Submit("ref-2");
  Submit("ref-3");
  auto leased = Lease("his", 3, kT0).messages;
  ASSERT_EQ(leased.size(), 3u);
  ASSERT_TRUE(store_->Ack(kQueue, "his", leased[1].sequence, kT0).ok());
  auto results = store_->AckBatch(kQueue, "his", {leased[0].sequence, 999999, leased[1].sequence},
                                  kT0, nullptr);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 3u);
  EXPECT_EQ((*results)[0].sequence, leased[0].sequence);
  EXPECT_TRUE((*results)[0].found);
  EXPECT_TRUE((*results)[0].first_ack);
  EXPECT_EQ((*results)[0].subject_id, "ref-1");
  EXPECT_EQ((*results)[1].sequence, 999999u);
  EXPECT_FALSE((*results)[1].found);
  EXPECT_TRUE((*results)[2].found);
  EXPECT_FALSE((*results)[2].first_ack);  // acked before
  // The batch's acks are durable; the one left out is redelivered after its lease.
  Reopen();
  auto after = Lease("his", 10, kT0 + 3600 * kSecond).messages;
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].subject_id, "ref-3");
}

// A subscriber's acks and the lease that refills its window: one transaction, one commit.
TEST_P(StoreConformance, AckThenLeaseWritesBothInOneCommit) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  for (const char* id : {"ref-1", "ref-2", "ref-3", "ref-4"}) Submit(id);
  auto leased = Lease("his", 2, kT0).messages;
  ASSERT_EQ(leased.size(), 2u);
  LeaseRequest req = RequestFor("his", 10, kT0 + kSecond);
  uint64_t commits = store_->commits();
  auto both = store_->AckThenLease({leased[0].sequence, leased[1].sequence, 999999}, nullptr, req);
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(store_->commits(), commits + 1);
  ASSERT_EQ(both->acks.size(), 3u);
  EXPECT_TRUE(both->acks[0].first_ack);
  EXPECT_TRUE(both->acks[1].first_ack);
  EXPECT_FALSE(both->acks[2].found);
  // The lease sees the acks: the acked messages are not leased again, the next two are.
  EXPECT_EQ(Subjects(both->leased), (std::vector<std::string>{"ref-3", "ref-4"}));
  EXPECT_EQ(both->leased.messages[0].attempt, 1u);
  // Both are durable: after a reopen the acks hold and the new leases hide their messages.
  Reopen();
  EXPECT_TRUE(Lease("his", 10, kT0 + 2 * kSecond).messages.empty());
  EXPECT_EQ(Subjects(Lease("his", 10, kT0 + 3600 * kSecond)),
            (std::vector<std::string>{"ref-3", "ref-4"}));
}

// A failure in the acks' part leaves the lease unwritten too.
TEST_P(StoreConformance, AckThenLeaseWhoseFollowUpFailsWritesNeither) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  Submit("ref-2");
  auto leased = Lease("his", 1, kT0).messages;
  ASSERT_EQ(leased.size(), 1u);
  AckFollowUp stale = [&](const ReferralRecord& r) -> std::optional<ReferralChange> {
    return ChangeOf(r, r.version + 5, 2, "");  // a version the row does not have
  };
  EXPECT_FALSE(
      store_->AckThenLease({leased[0].sequence}, stale, RequestFor("his", 10, kT0 + kSecond)).ok());
  EXPECT_EQ(Subjects(Lease("his", 10, kT0 + kSecond)), (std::vector<std::string>{"ref-2"}))
      << "the failed request's lease was written";
  auto retry = store_->AckBatch(kQueue, "his", {leased[0].sequence}, kT0 + kSecond, nullptr);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE((*retry)[0].first_ack) << "the failed request's ack was written";
}

TEST_P(StoreConformance, AckIsDurableIdempotentAndChecked) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  auto m = Lease("his", 1, kT0).messages.at(0);
  auto ack = store_->Ack(kQueue, "his", m.sequence, kT0);
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_TRUE(ack->first_ack);
  EXPECT_EQ(ack->subject_id, "ref-1");
  auto again = store_->Ack(kQueue, "his", m.sequence, kT0);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->first_ack);
  EXPECT_TRUE(absl::IsNotFound(store_->Ack(kQueue, "his", 999999, kT0).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->Ack(kQueue, "other", m.sequence, kT0).status()));
  Reopen();
  auto after = Lease("his", 10, kT0 + 3600 * kSecond);
  EXPECT_TRUE(after.messages.empty());
}

TEST_P(StoreConformance, NackRetriesLaterThenDeadLettersAtTheLimit) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  auto m = Lease("his", 1, kT0, 30, 2).messages.at(0);
  ASSERT_TRUE(store_->Nack(kQueue, "his", m.sequence, "HIS down", 2, kT0 + 5 * kSecond, kT0).ok());
  EXPECT_TRUE(Lease("his", 1, kT0 + kSecond, 30, 2).messages.empty());  // not before retry_at
  auto second = Lease("his", 1, kT0 + 5 * kSecond, 30, 2);
  ASSERT_EQ(second.messages.size(), 1u);
  EXPECT_EQ(second.messages[0].attempt, 2u);
  ASSERT_TRUE(store_->Nack(kQueue, "his", m.sequence, "HIS down", 2, kT0, kT0).ok());
  auto dead = store_->ListDeadLetters(DeadLetterFilter{"", "", 10});
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].last_error, "HIS down");
  EXPECT_TRUE(absl::IsNotFound(store_->Nack(kQueue, "his", 424242, "x", 2, kT0, kT0)));
}

TEST_P(StoreConformance, ReleaseMakesLeasesReadyAtOnce) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  auto m = Lease("his", 1, kT0, 30).messages.at(0);
  ASSERT_TRUE(store_->Release(kQueue, "his", {m.sequence}, kT0 + kSecond).ok());
  auto again = Lease("his", 1, kT0 + kSecond);
  ASSERT_EQ(again.messages.size(), 1u);
  EXPECT_EQ(again.messages[0].attempt, 2u);
}

TEST_P(StoreConformance, GroupsConsumeIndependently) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "archive", kT0).ok());
  Submit("ref-1");
  auto a = Lease("his", 10, kT0);
  ASSERT_TRUE(store_->Ack(kQueue, "his", a.messages.at(0).sequence, kT0).ok());
  EXPECT_EQ(Subjects(Lease("archive", 10, kT0)), std::vector<std::string>{"ref-1"});
}

TEST_P(StoreConformance, ReplayRedeliversAckedMessagesFromAPosition) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  Submit("ref-2");
  auto leased = Lease("his", 10, kT0);
  for (const auto& m : leased.messages)
    ASSERT_TRUE(store_->Ack(kQueue, "his", m.sequence, kT0).ok());
  auto n = store_->Replay(kQueue, "his", leased.messages[1].sequence, kT0);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(Subjects(Lease("his", 10, kT0)), std::vector<std::string>{"ref-2"});
}

TEST_P(StoreConformance, QueueStatsCountEveryState) {
  Submit("ref-0");
  auto before = store_->ListQueueStats();
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(before->size(), 1u);
  EXPECT_EQ((*before)[0].unconsumed, 1u);
  EXPECT_EQ((*before)[0].oldest_unconsumed_at, kT0);
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  Submit("ref-2");
  auto leased = Lease("his", 2, kT0, 30, 1);
  ASSERT_TRUE(store_->Nack(kQueue, "his", leased.messages[1].sequence, "bad", 1, kT0, kT0).ok());
  auto stats = store_->ListQueueStats();
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->size(), 1u);
  const QueueStats& q = (*stats)[0];
  EXPECT_EQ(q.retained, 3u);
  EXPECT_EQ(q.unconsumed, 0u);
  ASSERT_EQ(q.groups.size(), 1u);
  EXPECT_EQ(q.groups[0].in_flight, 1u);
  EXPECT_EQ(q.groups[0].dead, 1u);
  EXPECT_EQ(q.groups[0].ready, 1u);
  EXPECT_EQ(q.groups[0].oldest_enqueued_at, kT0);
}

// The counts follow every change of a message's state in a group: every figure equals what the
// rows say, after each step.
TEST_P(StoreConformance, QueueStatsFollowEveryChangeOfState) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "archive", kT0).ok());
  for (int i = 0; i < 6; ++i) Submit("ref-" + std::to_string(i), i % 3 + 1, kT0 + i);
  // retained, ready, in flight, dead, and the oldest waiting one's enqueue time after kT0
  auto figures = [](uint64_t retained, uint64_t ready, uint64_t in_flight, uint64_t dead,
                    Micros oldest) {
    return std::to_string(retained) + " " + std::to_string(ready) + " " +
           std::to_string(in_flight) + " " + std::to_string(dead) + " +" +
           std::to_string(oldest - kT0);
  };
  auto of = [&](const std::string& group) -> std::string {
    auto stats = store_->ListQueueStats();
    EXPECT_TRUE(stats.ok()) << stats.status();
    for (const QueueStats& q : *stats) {
      if (q.queue != kQueue) continue;
      for (const GroupStats& g : q.groups) {
        if (g.group == group) {
          return figures(q.retained, g.ready, g.in_flight, g.dead, g.oldest_enqueued_at);
        }
      }
    }
    ADD_FAILURE() << "no group " << group;
    return std::string();
  };
  EXPECT_EQ(of("his"), figures(6, 6, 0, 0, kT0));
  auto leased = Lease("his", 4, kT0, 30, 2).messages;  // by priority: ref-0, 3, then 1, 4
  ASSERT_EQ(leased.size(), 4u);
  EXPECT_EQ(of("his"), figures(6, 2, 4, 0, kT0));
  ASSERT_TRUE(store_->Ack(kQueue, "his", leased[0].sequence, kT0).ok());
  ASSERT_TRUE(store_->Ack(kQueue, "his", leased[0].sequence, kT0).ok());  // again: no change
  ASSERT_TRUE(store_->Nack(kQueue, "his", leased[1].sequence, "bad", 2, kT0, kT0).ok());
  ASSERT_TRUE(store_->Nack(kQueue, "his", leased[2].sequence, "bad", 1, kT0, kT0).ok());
  ASSERT_TRUE(store_->Release(kQueue, "his", {leased[3].sequence}, kT0).ok());
  EXPECT_EQ(of("his"), figures(6, 4, 0, 1, kT0 + 2));  // ref-0 acked, ref-1 dead
  EXPECT_EQ(of("archive"), figures(6, 6, 0, 0, kT0));  // the other group's rows untouched
  ASSERT_TRUE(store_->RequeueDeadLetters(kQueue, "his", 0, kT0).ok());
  EXPECT_EQ(of("his"), figures(6, 5, 0, 0, kT0 + 1));
  ASSERT_TRUE(store_->Replay(kQueue, "his", 0, kT0).ok());  // every row ready again
  EXPECT_EQ(of("his"), figures(6, 6, 0, 0, kT0));
  for (const char* group : {"his", "archive"}) {
    for (const auto& m : Lease(group, 10, kT0).messages) {
      if (m.subject_id == "ref-5") continue;
      ASSERT_TRUE(store_->Ack(kQueue, group, m.sequence, kT0).ok());
    }
  }
  auto pruned = store_->Prune(kT0 + 100 * kSecond);  // all but ref-5, acked by both groups
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 5u);
  EXPECT_EQ(of("his"), figures(1, 0, 1, 0, kT0 + 5));
  EXPECT_EQ(of("archive"), figures(1, 0, 1, 0, kT0 + 5));
}

TEST_P(StoreConformance, RequeueBringsDeadLettersBack) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  Submit("ref-2");
  for (const auto& m : Lease("his", 2, kT0, 30, 1).messages) {
    ASSERT_TRUE(store_->Nack(kQueue, "his", m.sequence, "bad", 1, kT0, kT0).ok());
  }
  auto dead = store_->ListDeadLetters(DeadLetterFilter{kQueue, "his", 1});
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);  // limit honoured
  auto one = store_->RequeueDeadLetters(kQueue, "his", (*dead)[0].sequence, kT0);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, 1u);
  EXPECT_TRUE(absl::IsNotFound(
      store_->RequeueDeadLetters(kQueue, "his", (*dead)[0].sequence, kT0).status()));
  auto rest = store_->RequeueDeadLetters(kQueue, "his", 0, kT0);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(*rest, 1u);
  auto again = Lease("his", 10, kT0);
  ASSERT_EQ(again.messages.size(), 2u);
  EXPECT_EQ(again.messages[0].attempt, 1u);  // attempts reset
}

// Retention counts from the ack: a message enqueued long ago but acked after the cutoff stays
// (a subscriber answering a redelivered copy late still finds it).
TEST_P(StoreConformance, PruneRemovesOnlyMessagesEveryGroupAckedBeforeTheCutoff) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("old-acked", 3, kT0);
  Submit("old-pending", 3, kT0);
  Submit("old-acked-late", 3, kT0);
  Submit("new-acked", 3, kT0 + 100 * kSecond);
  for (const auto& m : Lease("his", 10, kT0 + 100 * kSecond).messages) {
    if (m.subject_id == "old-pending") continue;
    Micros at = m.subject_id == "old-acked-late" ? kT0 + 60 * kSecond : kT0;
    ASSERT_TRUE(store_->Ack(kQueue, "his", m.sequence, at).ok());
  }
  auto pruned = store_->Prune(kT0 + 50 * kSecond);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 1u);
  auto stats = store_->ListQueueStats();
  EXPECT_EQ((*stats)[0].retained, 3u);
  // Once its ack is older than the cutoff too, it goes.
  pruned = store_->Prune(kT0 + 90 * kSecond);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 1u);
  // The referral record itself stays: retention applies to queue messages.
  EXPECT_TRUE(store_->GetReferral("old-acked").ok());
}

// More than one of the SQLite store's delete batches (500), with messages still pending among
// them, and newer acked ones after them: every old acked one goes, nothing else.
TEST_P(StoreConformance, PruneTakesEveryOldAckedMessageAcrossItsBatches) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  for (int i = 0; i < 1200; ++i) Submit("old-" + std::to_string(i), 3, kT0);
  Submit("new", 3, kT0 + 100 * kSecond);
  size_t pending = 0;
  for (const auto& m : Lease("his", 2000, kT0 + 10 * kSecond).messages) {
    if (m.sequence % 10 == 0 && m.subject_id != "new") {  // every tenth old one stays pending
      pending++;
      continue;
    }
    ASSERT_TRUE(store_->Ack(kQueue, "his", m.sequence, kT0 + 10 * kSecond).ok());
  }
  auto pruned = store_->Prune(kT0 + 50 * kSecond);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 1200u - pending);
  auto stats = store_->ListQueueStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].retained, pending + 1);
  EXPECT_EQ(*store_->Prune(kT0 + 50 * kSecond), 0u);  // nothing left to take
}

TEST_P(StoreConformance, PruneKeepsMessagesOfQueuesWithoutGroups) {
  Submit("waiting", 3, kT0);
  auto pruned = store_->Prune(kT0 + 3600 * kSecond);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 0u);
}

TEST_P(StoreConformance, EverythingAcknowledgedSurvivesReopen) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  Submit("ref-2");
  auto m = Lease("his", 1, kT0).messages.at(0);
  ASSERT_TRUE(store_->Ack(kQueue, "his", m.sequence, kT0).ok());
  Reopen();
  EXPECT_TRUE(store_->GetReferral("ref-1").ok());
  EXPECT_EQ(Subjects(Lease("his", 10, kT0)), std::vector<std::string>{"ref-2"});
  EXPECT_TRUE(store_->Health().ok());
}

// --- consults ---------------------------------------------------------------------------

ConsultRecord Consult(const std::string& id, const std::string& request_id, Micros due) {
  ConsultRecord c;
  c.id = id;
  c.requester = "124117234175811018";
  c.target = "12411723MB0A10013K";
  c.client_request_id = request_id;
  c.request_digest = "digest-" + request_id;
  c.state = 1;
  c.priority = 1;
  c.service = 2;
  c.alliance = "pingyu";
  c.requested_at = kT0;
  c.updated_at = kT0;
  c.due_at = due;
  c.body = "body-" + id;
  return c;
}

ConsultEventRecord ConsultEvent(const std::string& id, const std::string& actor,
                                const std::string& request_id, int action) {
  return {id, actor, request_id, action, kT0, "event"};
}

TEST_P(StoreConformance, ConsultSubmitIsIdempotentPerRequester) {
  auto first = store_->SubmitConsult(Consult("con-1", "rq-1", kT0 + kSecond),
                                     ConsultEvent("con-1", "124117234175811018", "", 1),
                                     {{"12411723MB0A10013K/consults", 1, "con-1", "p"}});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->duplicate);
  auto again = store_->SubmitConsult(Consult("con-2", "rq-1", kT0), {}, {});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->consult.id, "con-1");
  auto other = Consult("con-3", "rq-1", kT0);
  other.request_digest = "different";
  EXPECT_EQ(store_->SubmitConsult(other, {}, {}).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetConsult("con-2").status().code(), absl::StatusCode::kNotFound);
  auto stats = *store_->ListQueueStats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].retained, 1u);
  EXPECT_EQ(*store_->NextConsultDue(), kT0 + kSecond);
  auto due = *store_->ListDueConsults(kT0 + kSecond, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].id, "con-1");
  EXPECT_TRUE(store_->ListDueConsults(kT0, 10)->empty());
}

TEST_P(StoreConformance, ConsultChangeIsAtomicVersionedAndReportsAreNeverReplaced) {
  ASSERT_TRUE(store_
                  ->SubmitConsult(Consult("con-1", "rq-1", kT0 + kSecond),
                                  ConsultEvent("con-1", "124117234175811018", "", 1), {})
                  .ok());
  ConsultChange c;
  c.consult_id = "con-1";
  c.expected_version = 1;
  c.state = 5;
  c.updated_at = kT0 + kSecond;
  c.body = "reported";
  c.event = ConsultEvent("con-1", "12411723MB0A10013K", "rpt-rq", 5);
  c.report = ConsultReportRow{"rpt-1", "con-1", "ab", "", kT0 + kSecond, "report body"};
  c.messages = {{"124117234175811018/consult-updates", 1, "con-1", "u"}};
  auto changed = store_->ChangeConsult(c);
  ASSERT_TRUE(changed.ok()) << changed.status();
  auto rec = *store_->GetConsult("con-1");
  EXPECT_EQ(rec.state, 5);
  EXPECT_EQ(rec.version, 2);
  EXPECT_EQ(rec.due_at, 0);
  ASSERT_EQ(store_->ListConsultReports("con-1")->size(), 1u);
  EXPECT_EQ(store_->ListConsultEvents("con-1")->size(), 2u);
  // The same request again: duplicate, nothing written.
  auto again = store_->ChangeConsult(c);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  // A stale version: Aborted, nothing written.
  c.event.client_request_id = "rpt-rq-2";
  c.report->id = "rpt-2";
  EXPECT_EQ(store_->ChangeConsult(c).status().code(), absl::StatusCode::kAborted);
  // A report with an existing id is never replaced, and the whole change is undone.
  c.expected_version = 2;
  c.report->id = "rpt-1";
  c.report->body = "tampered";
  EXPECT_EQ(store_->ChangeConsult(c).status().code(), absl::StatusCode::kAlreadyExists);
  auto reports = *store_->ListConsultReports("con-1");
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].body, "report body");
  EXPECT_EQ(store_->GetConsult("con-1")->version, 2);
  EXPECT_EQ(store_->ListConsultEvents("con-1")->size(), 2u);
}

// The late views' listings: undecided referrals of an alliance or of a party, and consults in
// one open state, read through the small indexes of those states.
TEST_P(StoreConformance, UndecidedReferralsAndOpenConsultsAreListedByAllianceAndParty) {
  const std::string hospital = "12411723417580001B";  // Referral()'s receiver
  for (int i = 0; i < 4; ++i) {
    ReferralRecord r = Referral("ref-" + std::to_string(i), "req-" + std::to_string(i));
    r.state = i % 2 ? 8 : 2;  // ESCALATED or DELIVERED
    r.submitted_at = kT0 + i * kSecond;
    ASSERT_TRUE(SubmitRecord(r, r.id).ok());
  }
  auto ids = [](const auto& v) {
    std::vector<std::string> out;
    for (const auto& x : v) out.push_back(x.id);
    return out;
  };
  ReferralQuery escalated;
  escalated.state = 8;
  escalated.alliance = "pingyu";
  EXPECT_EQ(ids(*store_->ListReferrals(escalated)), (std::vector<std::string>{"ref-3", "ref-1"}));
  escalated.alliance.clear();
  escalated.party = hospital;
  EXPECT_EQ(ids(*store_->ListReferrals(escalated)), (std::vector<std::string>{"ref-3", "ref-1"}));
  escalated.party = "12411723417581102B";  // a party to none of them
  EXPECT_TRUE(store_->ListReferrals(escalated)->empty());
  ReferralQuery delivered;
  delivered.state = 2;
  delivered.alliance = "pingyu";
  EXPECT_EQ(ids(*store_->ListReferrals(delivered)), (std::vector<std::string>{"ref-2", "ref-0"}));

  for (int i = 0; i < 4; ++i) {
    ConsultRecord c = Consult("con-" + std::to_string(i), "rq-" + std::to_string(i), 0);
    c.state = 1 + i;  // REQUESTED, ACCEPTED, DECLINED, SCHEDULED
    c.requested_at = kT0 + i * kSecond;
    ASSERT_TRUE(
        store_->SubmitConsult(c, ConsultEvent(c.id, c.requester, "ev-" + std::to_string(i), 1), {})
            .ok());
  }
  ConsultQuery open;
  open.state = 4;
  open.alliance = "pingyu";
  EXPECT_EQ(ids(*store_->ListConsults(open)), std::vector<std::string>{"con-3"});
  open.alliance.clear();
  open.party = "12411723MB0A10013K";  // Consult()'s target
  open.state = 2;
  EXPECT_EQ(ids(*store_->ListConsults(open)), std::vector<std::string>{"con-1"});
  open.state = 3;  // DECLINED is not open: read the other way, same answer
  EXPECT_EQ(ids(*store_->ListConsults(open)), std::vector<std::string>{"con-2"});
}

// The queue listing's deadline breaches: escalated referrals still undecided, by receiver, and
// consults escalated and not yet reported, by target, counted whole, by alliance or by owner.
TEST_P(StoreConformance, DeadlineBreachesCountTheEscalatedOpenWorkByWhoMustAct) {
  const std::string hospital = "12411723417580001B";  // Referral()'s receiver
  const std::string other_hospital = "12411723417581102B";
  const std::vector<std::pair<int, std::string>> referrals = {
      {8, hospital}, {8, hospital}, {2, hospital}, {3, hospital}, {8, other_hospital}};
  for (size_t i = 0; i < referrals.size(); ++i) {
    ReferralRecord r = Referral("ref-" + std::to_string(i), "req-" + std::to_string(i));
    r.state = referrals[i].first;  // ESCALATED 8, DELIVERED 2, DECLINED 3
    r.receiver = referrals[i].second;
    if (r.receiver == other_hospital) r.alliance = "elsewhere";
    ASSERT_TRUE(SubmitRecord(r, r.id).ok());
  }
  const std::string center = "12411723MB0A10013K";  // Consult()'s target
  const std::string other_center = "12411723MB0A10021X";
  struct Open {
    int state;  // after the escalation, if any
    bool escalated;
    std::string target;
  };
  const std::vector<Open> consults = {
      {1, true, center},         // REQUESTED, its acceptance deadline passed
      {2, true, center},         // escalated, then ACCEPTED: its report still due
      {4, false, center},        // SCHEDULED, never late
      {5, true, center},         // escalated, then REPORTED: no longer a breach
      {1, true, other_center}};  // another alliance's
  for (size_t i = 0; i < consults.size(); ++i) {
    ConsultRecord c = Consult("con-" + std::to_string(i), "rq-" + std::to_string(i), 0);
    c.target = consults[i].target;
    if (c.target == other_center) c.alliance = "elsewhere";
    ASSERT_TRUE(
        store_->SubmitConsult(c, ConsultEvent(c.id, c.requester, "ev-" + std::to_string(i), 1), {})
            .ok());
    ConsultChange change;
    change.consult_id = c.id;
    change.expected_version = 1;
    change.state = consults[i].state;
    change.updated_at = kT0 + kSecond;
    change.body = c.body;
    change.event = ConsultEvent(c.id, "", "", consults[i].escalated ? 7 : 4);  // ESCALATE, SCHEDULE
    ASSERT_TRUE(store_->ChangeConsult(change).ok()) << c.id;
  }
  using Counts = std::map<std::string, uint64_t>;
  auto all = store_->CountDeadlineBreaches({});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->referrals, (Counts{{hospital, 2}, {other_hospital, 1}}));
  EXPECT_EQ(all->consults, (Counts{{center, 2}, {other_center, 1}}));
  auto pingyu = *store_->CountDeadlineBreaches({"pingyu", ""});
  EXPECT_EQ(pingyu.referrals, (Counts{{hospital, 2}}));
  EXPECT_EQ(pingyu.consults, (Counts{{center, 2}}));
  auto own = *store_->CountDeadlineBreaches({"", hospital});
  EXPECT_EQ(own.referrals, (Counts{{hospital, 2}}));
  EXPECT_TRUE(own.consults.empty());
  own = *store_->CountDeadlineBreaches({"", other_center});
  EXPECT_TRUE(own.referrals.empty());
  EXPECT_EQ(own.consults, (Counts{{other_center, 1}}));
}

TEST_P(StoreConformance, ListConsultsFiltersAndPagesNewestFirstAndFindsEventsByRequestId) {
  for (int i = 0; i < 5; ++i) {
    ConsultRecord c = Consult("con-" + std::to_string(i), "rq-" + std::to_string(i), 0);
    c.requested_at = kT0 + i * kSecond;
    c.service = i % 2 ? 2 : 3;
    if (i == 4) c.target = "12411723417580001B";
    ASSERT_TRUE(
        store_
            ->SubmitConsult(
                c, ConsultEvent(c.id, "124117234175811018", "ev-" + std::to_string(i), 1), {})
            .ok());
  }
  auto ids = [](const std::vector<ConsultRecord>& v) {
    std::vector<std::string> out;
    for (const auto& c : v) out.push_back(c.id);
    return out;
  };
  ConsultQuery q;
  q.party = "124117234175811018";
  EXPECT_EQ(ids(*store_->ListConsults(q)),
            (std::vector<std::string>{"con-4", "con-3", "con-2", "con-1", "con-0"}));
  q.service = 2;
  EXPECT_EQ(ids(*store_->ListConsults(q)), (std::vector<std::string>{"con-3", "con-1"}));
  q = ConsultQuery();
  q.party = "12411723417580001B";  // a party to con-4 only
  EXPECT_EQ(ids(*store_->ListConsults(q)), std::vector<std::string>{"con-4"});
  q = ConsultQuery();
  q.alliance = "pingyu";
  q.limit = 2;
  auto page = *store_->ListConsults(q);
  EXPECT_EQ(ids(page), (std::vector<std::string>{"con-4", "con-3"}));
  q.after_requested_at = page.back().requested_at;
  q.after_id = page.back().id;
  EXPECT_EQ(ids(*store_->ListConsults(q)), (std::vector<std::string>{"con-2", "con-1"}));
  q = ConsultQuery();
  q.requested_from = kT0 + kSecond;
  q.requested_to = kT0 + 3 * kSecond;
  EXPECT_EQ(ids(*store_->ListConsults(q)), (std::vector<std::string>{"con-2", "con-1"}));
  q = ConsultQuery();
  q.alliance = "elsewhere";
  EXPECT_TRUE(store_->ListConsults(q)->empty());

  auto found = store_->FindConsultEvent("124117234175811018", "ev-2");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->consult_id, "con-2");
  EXPECT_FALSE(store_->FindConsultEvent("124117234175811018", "ev-9")->has_value());
  EXPECT_FALSE(store_->FindConsultEvent("someone-else", "ev-2")->has_value());
}

TEST_P(StoreConformance, ThreadMessagesGetConsecutiveSeqsAndRetriesAreDuplicates) {
  ASSERT_TRUE(
      store_->SubmitConsult(Consult("con-1", "rq-1", 0), {"con-1", "a", "", 1, kT0, ""}, {}).ok());
  auto announce = [](ConsultMessageRow& r) {
    r.body = "seq " + std::to_string(r.seq);
    return std::vector<NewMessage>{{"x/consult-updates", 3, r.consult_id, r.body}};
  };
  for (int i = 0; i < 3; ++i) {
    ConsultMessageRow m{"msg-" + std::to_string(i), "con-1", 0, "a",
                        "m" + std::to_string(i),    kT0,     ""};
    auto out = store_->AppendConsultMessage(m, announce);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->row.seq, static_cast<uint64_t>(i + 1));
  }
  ConsultMessageRow retry{"msg-9", "con-1", 0, "a", "m1", kT0, ""};
  auto dup = store_->AppendConsultMessage(retry, announce);
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(dup->row.seq, 2u);
  auto all = *store_->ListConsultMessages("con-1", 0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].body, "seq 3");
  EXPECT_EQ(store_->ListConsultMessages("con-1", 2)->size(), 1u);
  EXPECT_EQ((*store_->ListQueueStats())[0].retained, 3u);
}

// --- results --------------------------------------------------------------------------------

ResultRow Result(const std::string& id, const std::string& request_id, Micros performed) {
  ResultRow r;
  r.id = id;
  r.publisher = "124117234175811018";
  r.client_request_id = request_id;
  r.request_digest = "d-" + request_id;
  r.patient_key = "patient-key";
  r.item_code = "LAB-GLU";
  r.kind = 1;
  r.performed_at = performed;
  r.received_at = kT0;
  r.body = "b-" + id;
  return r;
}

// The ids a publish's scan of the priors hands over, visiting every one.
std::vector<std::string> PriorIds(const PriorScan& priors) {
  std::vector<std::string> ids;
  EXPECT_TRUE(priors(EveryPrior, [&](const ResultRow& p) {
                ids.push_back(p.id);
                return true;
              }).ok());
  return ids;
}

TEST_P(StoreConformance, PublishDecidesInsideTheTransactionWithThePriorsAndAnUnusedRetest) {
  std::vector<std::string> seen;
  auto decide = [&](const PriorScan& priors, const UnusedRetestLookup& retest,
                    ResultRow& row) -> absl::StatusOr<PublishDecision> {
    seen = PriorIds(priors);
    PublishDecision d;
    auto r = retest();
    if (!r.ok()) return r.status();
    if (*r) d.use_retest_id = (*r)->id;
    row.repeat_without_reason = !seen.empty() && !*r;
    d.messages = {{"x/results", 3, row.id, "m"}};
    return d;
  };
  ASSERT_TRUE(store_->PublishResult(Result("res-1", "q1", kT0 - 2 * kSecond), decide).ok());
  EXPECT_TRUE(seen.empty());
  auto second = store_->PublishResult(Result("res-2", "q2", kT0 - kSecond), decide);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(seen, std::vector<std::string>{"res-1"});
  EXPECT_TRUE(second->row.repeat_without_reason);
  RetestRow retest{"rt-1", "124117234175811018", "rq", "patient-key", "LAB-GLU", 3, kT0, "", "b"};
  ASSERT_TRUE(store_->RecordRetest(retest).ok());
  auto third = store_->PublishResult(Result("res-3", "q3", kT0), decide);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"res-2", "res-1"})) << "newest performed first";
  EXPECT_FALSE(third->row.repeat_without_reason);
  EXPECT_FALSE(
      store_->FindUnusedRetest("124117234175811018", "patient-key", "LAB-GLU")->has_value())
      << "the re-test reason was used by res-3";
  // A retry is a duplicate and does not decide again; other content is AlreadyExists.
  seen = {"untouched"};
  auto dup = store_->PublishResult(Result("res-9", "q3", kT0), decide);
  ASSERT_TRUE(dup.ok());
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(dup->row.id, "res-3");
  EXPECT_EQ(seen, std::vector<std::string>{"untouched"});
  auto other = Result("res-9", "q3", kT0);
  other.request_digest = "else";
  EXPECT_EQ(store_->PublishResult(other, decide).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ((*store_->ListQueueStats())[0].retained, 3u);
  EXPECT_EQ(store_->ListResults("patient-key", {}, 10)->size(), 3u);
}

TEST_P(StoreConformance, APublishSeesOnlyResultsPerformedBeforeItAndStopsWhereItDecides) {
  auto none = [](const PriorScan&, const UnusedRetestLookup&,
                 ResultRow&) -> absl::StatusOr<PublishDecision> { return PublishDecision{}; };
  for (int i = 1; i <= 4; ++i) {
    ResultRow r = Result("res-" + std::to_string(i), "q" + std::to_string(i), kT0 + i * kSecond);
    ASSERT_TRUE(store_->PublishResult(r, none).ok());
  }
  std::vector<std::string> all, first;
  auto decide = [&](const PriorScan& priors, const UnusedRetestLookup&,
                    ResultRow&) -> absl::StatusOr<PublishDecision> {
    all = PriorIds(priors);
    first.clear();
    absl::Status visited = priors(EveryPrior, [&](const ResultRow& p) {
      first.push_back(p.id);
      return false;  // decided on the newest
    });
    if (!visited.ok()) return visited;
    return PublishDecision{};
  };
  // Published now, performed between res-2 and res-3: res-3 and res-4 are not earlier results.
  ASSERT_TRUE(store_->PublishResult(Result("res-5", "q5", kT0 + 2 * kSecond + 1), decide).ok());
  EXPECT_EQ(all, (std::vector<std::string>{"res-2", "res-1"}));
  EXPECT_EQ(first, std::vector<std::string>{"res-2"});
}

TEST_P(StoreConformance, APublishsFilterSeesEachEarlierResultsInstitutionAndTimeFirst) {
  auto none = [](const PriorScan&, const UnusedRetestLookup&,
                 ResultRow&) -> absl::StatusOr<PublishDecision> { return PublishDecision{}; };
  const std::string lab = "12411723MB0A10014N";
  for (int i = 1; i <= 4; ++i) {
    ResultRow r = Result("res-" + std::to_string(i), "q" + std::to_string(i), kT0 + i * kSecond);
    if (i % 2 == 0) r.publisher = lab;
    ASSERT_TRUE(store_->PublishResult(r, none).ok());
  }
  ResultRow other_item = Result("res-x", "qx", kT0);
  other_item.item_code = "LAB-CR";
  ResultRow other_patient = Result("res-y", "qy", kT0);
  other_patient.patient_key = "other-patient-key";
  ASSERT_TRUE(store_->PublishResult(other_item, none).ok());
  ASSERT_TRUE(store_->PublishResult(other_patient, none).ok());
  std::vector<std::pair<std::string, Micros>> asked;
  std::vector<std::string> visited;
  auto decide = [&](const PriorScan& priors, const UnusedRetestLookup&,
                    ResultRow&) -> absl::StatusOr<PublishDecision> {
    auto from_the_lab = [&](const std::string& publisher, Micros performed_at) {
      asked.emplace_back(publisher, performed_at);
      return publisher == lab;
    };
    absl::Status scanned = priors(from_the_lab, [&](const ResultRow& p) {
      visited.push_back(p.id);
      return true;
    });
    if (!scanned.ok()) return scanned;
    return PublishDecision{};
  };
  ASSERT_TRUE(store_->PublishResult(Result("res-5", "q5", kT0 + 5 * kSecond), decide).ok());
  using Asked = std::vector<std::pair<std::string, Micros>>;
  EXPECT_EQ(asked, (Asked{{lab, kT0 + 4 * kSecond},
                          {"124117234175811018", kT0 + 3 * kSecond},
                          {lab, kT0 + 2 * kSecond},
                          {"124117234175811018", kT0 + kSecond}}))
      << "newest performed first, this patient's results of this item only";
  EXPECT_EQ(visited, (std::vector<std::string>{"res-4", "res-2"}))
      << "only the results the filter let through are handed over";
}

TEST_P(StoreConformance, CountRetestsByInstitutionAndReasonWithRepeatsWithoutReasonAsZero) {
  auto no_reason = [](const PriorScan& priors, const UnusedRetestLookup&,
                      ResultRow& row) -> absl::StatusOr<PublishDecision> {
    row.repeat_without_reason = !PriorIds(priors).empty();
    return PublishDecision{};
  };
  ASSERT_TRUE(store_->PublishResult(Result("res-1", "q1", kT0 - 2 * kSecond), no_reason).ok());
  ASSERT_TRUE(store_->PublishResult(Result("res-2", "q2", kT0 - kSecond), no_reason).ok());
  ASSERT_TRUE(store_->PublishResult(Result("res-3", "q3", kT0), no_reason).ok());
  RetestRow a{"rt-1", "12411723MB0A10013K", "r1", "pk", "LAB-GLU", 3, kT0, "", "b"};
  RetestRow b{"rt-2", "12411723MB0A10013K", "r2", "pk", "LAB-GLU", 3, kT0 + 1, "", "b"};
  RetestRow c{"rt-3", "124117234175811018", "r3", "pk", "LAB-GLU", 1, kT0 + 2, "", "b"};
  RetestRow late{"rt-4", "124117234175811018", "r4", "pk", "LAB-GLU",
                 1,      kT0 + 100 * kSecond,  "",   "b"};
  for (const RetestRow& r : {a, b, c, late}) ASSERT_TRUE(store_->RecordRetest(r).ok());
  auto counts = store_->CountRetests(kT0 - 10 * kSecond, kT0 + 10 * kSecond);
  ASSERT_TRUE(counts.ok()) << counts.status();
  ASSERT_EQ(counts->size(), 3u);
  // Ordered by institution (bytewise), then reason; the repeats without reason are reason 0.
  EXPECT_EQ((*counts)[0].institution, "124117234175811018");
  EXPECT_EQ((*counts)[0].reason, 0);
  EXPECT_EQ((*counts)[0].count, 2u);
  EXPECT_EQ((*counts)[1].institution, "124117234175811018");
  EXPECT_EQ((*counts)[1].reason, 1);
  EXPECT_EQ((*counts)[1].count, 1u) << "the one recorded after the period is not counted";
  EXPECT_EQ((*counts)[2].institution, "12411723MB0A10013K");
  EXPECT_EQ((*counts)[2].reason, 3);
  EXPECT_EQ((*counts)[2].count, 2u);
  EXPECT_EQ(store_->CountRetests(kT0 - 10 * kSecond, 0)->size(), 3u);
}

// --- the audit trail -----------------------------------------------------------------------

static_assert(testing::kAuditAt == kT0);

std::vector<AuditRow> AllAudit(Store& store) {
  AuditQuery q;
  q.limit = 100000;
  auto rows = store.ListAudit(q);
  EXPECT_TRUE(rows.ok()) << rows.status();
  return rows.ok() ? *rows : std::vector<AuditRow>{};
}

TEST_P(StoreConformance, AuditEntriesAreNumberedAndHashChainedInOrder) {
  ASSERT_TRUE(store_
                  ->AppendAudit({AuditEntry("a", "GetReferral", "ref-1", "pk-1"),
                                 AuditEntry("b", "ListResults", "", "pk-2")})
                  .ok());
  ASSERT_TRUE(store_->AppendAudit({AuditEntry("c", "SubmitReferral", "ref-2", "pk-1")}).ok());
  Reopen();
  auto rows = AllAudit(*store_);
  ASSERT_EQ(rows.size(), 3u);
  testing::ExpectHashChained(rows);
  EXPECT_EQ(rows[2].actor, "c");
}

TEST_P(StoreConformance, AuditSearchByPatientFindsEntriesAboutTheirRecords) {
  ASSERT_TRUE(store_
                  ->AppendAudit({AuditEntry("clinic", "SubmitReferral", "ref-1", "pk-1"),
                                 AuditEntry("hospital", "DELIVER", "ref-1"),
                                 AuditEntry("other", "DELIVER", "ref-9"),
                                 AuditEntry("clinic", "ListResults", "", "pk-2")})
                  .ok());
  AuditQuery q;
  q.patient_key = "pk-1";
  auto rows = store_->ListAudit(q);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].actor, "clinic");
  EXPECT_EQ((*rows)[1].actor, "hospital");  // the delivery names the referral, not the patient
  q = AuditQuery();
  q.actor = "other";
  EXPECT_EQ(store_->ListAudit(q)->size(), 1u);
}

TEST_P(StoreConformance, AScopesEntriesCommitWithItsWriteAndGoBackWhenTheWriteFails) {
  {
    AuditScope scope(*store_, AuditEntry("clinic", "SubmitReferral"));
    AuditScope::Touch("ref-1", "pk-1");
    Submit("ref-1");
    // Written with the submit: nothing is left for Finish.
    EXPECT_EQ(AllAudit(*store_).size(), 1u);
    ASSERT_TRUE(scope.Finish(absl::StatusCode::kOk).ok());
  }
  EXPECT_EQ(AllAudit(*store_).size(), 1u);
  {
    AuditScope scope(*store_, AuditEntry("clinic", "SubmitReferral"));
    AuditScope::Touch("ref-x", "pk-1");
    ReferralRecord clash = Referral("ref-x", "req-ref-1");  // same request id, other content
    clash.request_digest = "another-digest";
    auto res = SubmitRecord(clash, "ref-x");
    EXPECT_TRUE(absl::IsAlreadyExists(res.status())) << res.status();
    EXPECT_EQ(AllAudit(*store_).size(), 1u);  // rolled back with the failed write
    ASSERT_TRUE(scope.Finish(absl::StatusCode::kAlreadyExists).ok());
  }
  auto rows = AllAudit(*store_);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].subject, "ref-1");
  EXPECT_EQ(rows[0].outcome, "OK");
  EXPECT_EQ(rows[1].subject, "ref-x");
  EXPECT_EQ(rows[1].outcome, "ALREADY_EXISTS");
  // A request that touched nothing still leaves one entry.
  {
    AuditScope scope(*store_, AuditEntry("stranger", "GetReferral"));
    ASSERT_TRUE(scope.Finish(absl::StatusCode::kPermissionDenied).ok());
  }
  EXPECT_EQ(AllAudit(*store_).back().outcome, "PERMISSION_DENIED");
}

TEST_P(StoreConformance, ALeaseForAReaderRecordsADeliveryPerMessage) {
  ASSERT_TRUE(store_->EnsureGroup(kQueue, "his", kT0).ok());
  Submit("ref-1");
  Submit("ref-2");
  LeaseRequest req;
  req.queue = kQueue;
  req.group = "his";
  req.max_messages = 10;
  req.now = kT0;
  req.lease_until = kT0 + 30 * kSecond;
  req.reader = "12411723417580001B";
  req.reader_alliance = "pingyu";
  req.reader_peer = "ipv4:127.0.0.1:6000";
  ASSERT_EQ(store_->Lease(req)->messages.size(), 2u);
  auto rows = AllAudit(*store_);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].action, "DELIVER");
  EXPECT_EQ(rows[0].actor, "12411723417580001B");
  EXPECT_EQ(rows[0].subject, "ref-1");
  EXPECT_EQ(rows[1].subject, "ref-2");
}

TEST_P(StoreConformance, AuditEntriesLeaveOnlyThroughAnArchiveThatKeepsTheChain) {
  std::vector<AuditRow> rows;
  for (int i = 0; i < 5; ++i) rows.push_back(AuditEntry("a", "GetReferral", "", "", kT0 + i));
  rows.push_back(AuditEntry("a", "GetReferral", "", "", kT0 + 100 * kSecond));
  ASSERT_TRUE(store_->AppendAudit(rows).ok());
  std::vector<AuditRow> archived;
  auto sink = [&archived](const std::vector<AuditRow>& batch) -> absl::StatusOr<std::string> {
    archived.insert(archived.end(), batch.begin(), batch.end());
    return std::string("archive-") + std::to_string(batch.back().seq);
  };
  auto n = store_->ArchiveAudit(kT0 + 10 * kSecond, kT0 + 200 * kSecond, 3, sink);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 3u);  // at most `limit` at a time
  n = store_->ArchiveAudit(kT0 + 10 * kSecond, kT0 + 200 * kSecond, 3, sink);
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(archived.size(), 5u);
  auto anchor = store_->GetAuditAnchor();
  ASSERT_TRUE(anchor.ok());
  EXPECT_EQ(anchor->upto_seq, 5u);
  EXPECT_EQ(anchor->file, "archive-5");
  auto kept = AllAudit(*store_);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].seq, 6u);
  EXPECT_EQ(kept[0].prev_hash, anchor->last_hash);
  // A failing sink archives nothing.
  ASSERT_TRUE(store_->AppendAudit({AuditEntry("b", "GetReferral")}).ok());
  auto failed = store_->ArchiveAudit(
      kT0 + 1000 * kSecond, kT0 + 2000 * kSecond, 10,
      [](const auto&) -> absl::StatusOr<std::string> { return absl::InternalError("disk gone"); });
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(AllAudit(*store_).size(), 2u);
  // Numbering continues after the archived entries.
  ASSERT_TRUE(store_->AppendAudit({AuditEntry("c", "GetReferral")}).ok());
  EXPECT_EQ(AllAudit(*store_).back().seq, 8u);
}

// Only a prefix of the chain leaves: after the clock stepped back, an entry not old enough
// ends the archive although older ones follow it, until it is old enough too.
TEST_P(StoreConformance, AnAuditEntryNotOldEnoughEndsTheArchiveEvenWhenOlderOnesFollowIt) {
  auto at = [](Micros t) { return AuditEntry("a", "GetReferral", "", "", t); };
  ASSERT_TRUE(
      store_->AppendAudit({at(kT0 - 50), at(kT0 - 40), at(kT0), at(kT0 - 30), at(kT0 - 20)}).ok());
  std::vector<AuditRow> archived;
  auto sink = [&archived](const std::vector<AuditRow>& batch) -> absl::StatusOr<std::string> {
    archived.insert(archived.end(), batch.begin(), batch.end());
    return std::string("archive-") + std::to_string(batch.back().seq);
  };
  auto n = store_->ArchiveAudit(kT0 - 10, kT0, 100, sink);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2u);
  ASSERT_EQ(archived.size(), 2u);
  EXPECT_EQ(archived.back().seq, 2u);
  EXPECT_EQ(*store_->ArchiveAudit(kT0 - 10, kT0, 100, sink), 0u);
  EXPECT_EQ(*store_->ArchiveAudit(kT0 + 1, kT0, 100, sink), 3u);
  EXPECT_EQ(archived.back().seq, 5u);
  EXPECT_EQ(store_->GetAuditAnchor()->upto_seq, 5u);
}

TEST_P(StoreConformance, PruneResultsRemovesOnlyResultsReceivedBeforeTheCutoff) {
  auto publish = [this](const std::string& id, Micros received) {
    ResultRow row;
    row.id = id;
    row.publisher = "124117234175811018";
    row.client_request_id = "req-" + id;
    row.request_digest = "d-" + id;
    row.patient_key = "pk-1";
    row.item_code = "LAB-GLU";
    row.kind = 1;
    row.performed_at = received;
    row.received_at = received;
    row.body = "body";
    auto r = store_->PublishResult(row, [](const auto&, const auto&, ResultRow&) {
      return absl::StatusOr<PublishDecision>(PublishDecision{});
    });
    ASSERT_TRUE(r.ok()) << r.status();
  };
  publish("old", kT0);
  publish("new", kT0 + 100 * kSecond);
  auto n = store_->PruneResults(kT0 + 50 * kSecond);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1u);
  EXPECT_TRUE(absl::IsNotFound(store_->GetResult("old").status()));
  EXPECT_TRUE(store_->GetResult("new").ok());
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreConformance,
                         ::testing::Values(SqliteFactory(), PostgresFactory()),
                         [](const ::testing::TestParamInfo<StoreFactory>& i) {
                           return i.param.name;
                         });

TEST(SqliteStore, RefusesToOpenAFileThatIsNotADatabase) {
  auto dir = std::filesystem::temp_directory_path() / ("refbroker-bad-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "store.db") << std::string(8192, 'x');
  SqliteOptions o;
  o.path = (dir / "store.db").string();
  auto s = SqliteStore::Open(o);
  EXPECT_FALSE(s.ok());
  std::filesystem::remove_all(dir);
}

TEST(SqliteStore, RefusesToChangeOrDeleteAnAuditEntry) {
  std::string dir =
      (std::filesystem::temp_directory_path() / ("refbroker-audit-" + std::to_string(getpid())))
          .string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    SqliteOptions o;
    o.path = dir + "/store.db";
    auto store = SqliteStore::Open(o);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->AppendAudit({AuditEntry("a", "GetReferral")}).ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/store.db").c_str(), &db), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "UPDATE audit_log SET actor='x'", nullptr, nullptr, nullptr),
            SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM audit_log", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace refbroker::storage

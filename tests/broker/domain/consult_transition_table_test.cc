// Every (state, action, actor) combination of the consult state machine, through the real
// workflow and a real SQLite store: legal transitions succeed, move the deadline as the
// service says and send one event to the other party's queue; illegal ones are
// FAILED_PRECONDITION or PERMISSION_DENIED and change nothing. The expected table is written
// out here, independently of consult_state_machine.cc.

#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "tests/support/consult_fixture.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

enum class Who { kRequester, kTarget, kOtherClinic, kOperator };

const char* WhoName(Who w) {
  switch (w) {
    case Who::kRequester:
      return "Requester";
    case Who::kTarget:
      return "Target";
    case Who::kOtherClinic:
      return "OtherClinic";
    case Who::kOperator:
      return "Operator";
  }
  return "?";
}

struct Expected {
  absl::StatusCode code;
  v1::ConsultState to = v1::CONSULT_STATE_UNSPECIFIED;
  Who notified = Who::kRequester;  // whose CONSULT_UPDATES queue gets the event
};

// The specification, as a table. The actions are the parties' ones; REPORT is IssueReport.
Expected Spec(v1::ConsultState s, v1::ConsultAction a, Who w) {
  using C = absl::StatusCode;
  if (w == Who::kOtherClinic || w == Who::kOperator) return {C::kPermissionDenied};
  Who owner = a == v1::CONSULT_CANCEL ? Who::kRequester : Who::kTarget;
  if (w != owner) return {C::kPermissionDenied};
  const std::set<v1::ConsultState> working = {v1::CONSULT_ACCEPTED, v1::CONSULT_SCHEDULED};
  switch (a) {
    case v1::CONSULT_ACCEPT:
      return s == v1::CONSULT_REQUESTED ? Expected{C::kOk, v1::CONSULT_ACCEPTED}
                                        : Expected{C::kFailedPrecondition};
    case v1::CONSULT_DECLINE:
      return s == v1::CONSULT_REQUESTED ? Expected{C::kOk, v1::CONSULT_DECLINED}
                                        : Expected{C::kFailedPrecondition};
    case v1::CONSULT_SCHEDULE:
      return working.count(s) ? Expected{C::kOk, v1::CONSULT_SCHEDULED}
                              : Expected{C::kFailedPrecondition};
    case v1::CONSULT_REPORT:
      return working.count(s) ? Expected{C::kOk, v1::CONSULT_REPORTED}
                              : Expected{C::kFailedPrecondition};
    case v1::CONSULT_CANCEL:
      return (s == v1::CONSULT_REQUESTED || working.count(s))
                 ? Expected{C::kOk, v1::CONSULT_CANCELLED, Who::kTarget}
                 : Expected{C::kFailedPrecondition};
    default:
      return {C::kInvalidArgument};
  }
}

using Combo = std::tuple<v1::ConsultState, v1::ConsultAction, Who>;

class ConsultTransitionTable : public ConsultFixture, public ::testing::WithParamInterface<Combo> {
 protected:
  // Puts a fresh consult into `state` directly in the store, with its acceptance deadline
  // still running unless the state is final (as the workflow leaves it).
  std::string InState(v1::ConsultState state) {
    static int n = 0;
    std::string id = RequestEcg("setup-" + std::to_string(n++));
    auto rec = *store_->GetConsult(id);
    storage::ConsultChange c;
    c.consult_id = id;
    c.expected_version = rec.version;
    c.state = state;
    bool final = state == v1::CONSULT_DECLINED || state == v1::CONSULT_REPORTED ||
                 state == v1::CONSULT_CANCELLED;
    c.due_at = final ? 0 : rec.due_at;
    c.updated_at = clock_.Now();
    c.body = rec.body;
    c.event = {id, "test-setup", "", 0, clock_.Now(), ""};
    EXPECT_TRUE(store_->ChangeConsult(c).ok());
    return id;
  }
  std::string Principal(Who w) {
    switch (w) {
      case Who::kRequester:
        return kClinic;
      case Who::kTarget:
        return kEcgCenter;
      case Who::kOtherClinic:
        return kOtherClinic;
      case Who::kOperator:
        return kOperator;
    }
    return "";
  }
  absl::Status Do(Who who, const std::string& id, v1::ConsultAction action) {
    static int n = 0;
    std::string rid = "act-" + std::to_string(n++);
    const auth::Principal& p = P(Principal(who));
    if (action == v1::CONSULT_REPORT) return consults_->IssueReport(p, Report(id, rid)).status();
    v1::TransitionConsultRequest r;
    r.set_consult_id(id);
    r.set_client_request_id(rid);
    r.mutable_doctor()->set_id("D1");
    r.mutable_doctor()->set_name("张医生");
    if (action == v1::CONSULT_ACCEPT) r.mutable_accept();
    if (action == v1::CONSULT_DECLINE) r.mutable_decline()->set_reason(v1::NO_CAPACITY);
    if (action == v1::CONSULT_CANCEL) r.mutable_cancel()->set_reason("patient recovered");
    if (action == v1::CONSULT_SCHEDULE) {
      r.mutable_schedule()->mutable_session_at()->set_seconds(clock_.Now() / 1000000 + 3600);
      r.mutable_schedule()->set_meeting_url("https://meet.example.cn/room/42");
      r.mutable_schedule()->set_duration_minutes(30);
    }
    return consults_->Transition(p, r).status();
  }
};

TEST_P(ConsultTransitionTable, FollowsTheSpecification) {
  auto [state, action, who] = GetParam();
  Expected want = Spec(state, action, who);
  std::string id = InState(state);
  auto before = *store_->GetConsult(id);
  size_t events_before = store_->ListConsultEvents(id)->size();
  auto messages_before = Messages();

  absl::Status got = Do(who, id, action);
  ASSERT_EQ(got.code(), want.code) << got;

  auto after = *store_->GetConsult(id);
  auto messages_after = Messages();
  if (want.code != absl::StatusCode::kOk) {
    EXPECT_EQ(after.state, before.state);
    EXPECT_EQ(after.version, before.version);
    EXPECT_EQ(store_->ListConsultEvents(id)->size(), events_before);
    EXPECT_EQ(store_->ListConsultReports(id)->size(), 0u);
    EXPECT_EQ(messages_after, messages_before);
    return;
  }
  EXPECT_EQ(after.state, want.to);
  EXPECT_EQ(after.version, before.version + 1);
  switch (want.to) {
    case v1::CONSULT_ACCEPTED:  // the report deadline of ECG reading (ROUTINE: 24 h) starts
      EXPECT_EQ(after.due_at, clock_.Now() + 24LL * 3600 * 1000000);
      break;
    case v1::CONSULT_SCHEDULED:  // not before the session (in 1 h, 30 min) has ended
      EXPECT_GE(after.due_at, clock_.Now() + 90LL * 60 * 1000000);
      break;
    default:  // a decline, a report or a cancellation ends the deadline
      EXPECT_EQ(after.due_at, 0);
  }
  EXPECT_EQ(store_->ListConsultEvents(id)->size(), events_before + 1);
  EXPECT_EQ(store_->ListConsultReports(id)->size(), action == v1::CONSULT_REPORT ? 1u : 0u);
  std::string queue = Principal(want.notified) + "/consult-updates";
  EXPECT_EQ(messages_after[queue], messages_before[queue] + 1) << queue;
  uint64_t total_before = 0, total_after = 0;
  for (auto& [q, n] : messages_before) total_before += n;
  for (auto& [q, n] : messages_after) total_after += n;
  EXPECT_EQ(total_after, total_before + 1) << "exactly one event message";
  auto update = LastOn(queue).consult_update();
  EXPECT_EQ(update.consult_id(), id);
  EXPECT_EQ(update.event().action(), action);
  EXPECT_EQ(update.event().from_state(), state);
  EXPECT_EQ(update.event().to_state(), want.to);
  EXPECT_EQ(update.event().actor().institution(), Principal(who));
  EXPECT_EQ(update.state(), want.to);
  EXPECT_EQ(update.has_report(), action == v1::CONSULT_REPORT);
}

INSTANTIATE_TEST_SUITE_P(
    AllCombinations, ConsultTransitionTable,
    ::testing::Combine(
        ::testing::Values(v1::CONSULT_REQUESTED, v1::CONSULT_ACCEPTED, v1::CONSULT_DECLINED,
                          v1::CONSULT_SCHEDULED, v1::CONSULT_REPORTED, v1::CONSULT_CANCELLED),
        ::testing::Values(v1::CONSULT_ACCEPT, v1::CONSULT_DECLINE, v1::CONSULT_SCHEDULE,
                          v1::CONSULT_REPORT, v1::CONSULT_CANCEL),
        ::testing::Values(Who::kRequester, Who::kTarget, Who::kOtherClinic, Who::kOperator)),
    [](const ::testing::TestParamInfo<Combo>& combo) {
      return v1::ConsultState_Name(std::get<0>(combo.param)) + "_" +
             v1::ConsultAction_Name(std::get<1>(combo.param)) + "_by" +
             WhoName(std::get<2>(combo.param));
    });

// The broker's escalation: only while a deadline runs, never twice for one deadline, and it
// tells both parties and the alliance operator without changing the state.
TEST_F(ConsultTransitionTable, EscalationOnlyWhileADeadlineRuns) {
  std::vector<std::pair<std::string, v1::ConsultState>> ids;
  for (auto state : {v1::CONSULT_REQUESTED, v1::CONSULT_ACCEPTED, v1::CONSULT_DECLINED,
                     v1::CONSULT_SCHEDULED, v1::CONSULT_REPORTED, v1::CONSULT_CANCELLED}) {
    ids.push_back({InState(state), state});
  }
  auto messages_before = Messages();
  clock_.Advance(25LL * 3600 * 1000000);  // past the ROUTINE acceptance deadline (24 h)
  auto n = consults_->EscalateDue();
  ASSERT_TRUE(n.ok()) << n.status();
  for (auto& [id, state] : ids) {
    auto rec = *store_->GetConsult(id);
    EXPECT_EQ(rec.state, state) << "escalation never changes the state";
    v1::Consult body;
    ASSERT_TRUE(body.ParseFromString(rec.body));
    bool waits = state == v1::CONSULT_REQUESTED || state == v1::CONSULT_ACCEPTED ||
                 state == v1::CONSULT_SCHEDULED;
    EXPECT_EQ(body.escalated(), waits) << v1::ConsultState_Name(state);
    EXPECT_EQ(rec.due_at, 0) << v1::ConsultState_Name(state);
  }
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(*consults_->EscalateDue(), 0u);  // never twice
  auto messages_after = Messages();
  EXPECT_EQ(messages_after["pingyu/alliance"], messages_before["pingyu/alliance"] + 3);
  for (const char* party : {kClinic, kEcgCenter}) {
    std::string q = std::string(party) + "/consult-updates";
    EXPECT_EQ(messages_after[q], messages_before[q] + 3) << q;
    EXPECT_EQ(LastOn(q).consult_update().event().action(), v1::CONSULT_ESCALATE);
  }
}

}  // namespace
}  // namespace refbroker::testing

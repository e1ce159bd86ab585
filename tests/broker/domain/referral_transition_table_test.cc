// Every (state, action, actor) combination of the referral state machine, through the real
// workflow and a real SQLite store: legal transitions succeed and send the right event to the
// right queue; illegal ones are FAILED_PRECONDITION or PERMISSION_DENIED and change nothing.
// The expected table is written out here, independently of referral_state_machine.cc.

#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "tests/support/workflow_fixture.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

enum class Who { kSender, kReceiver, kOtherClinic, kOperator };

const char* WhoName(Who w) {
  switch (w) {
    case Who::kSender:
      return "Sender";
    case Who::kReceiver:
      return "Receiver";
    case Who::kOtherClinic:
      return "OtherClinic";
    case Who::kOperator:
      return "Operator";
  }
  return "?";
}

struct Expected {
  absl::StatusCode code;
  v1::ReferralState to = v1::REFERRAL_STATE_UNSPECIFIED;
  Who notified = Who::kSender;  // whose REFERRAL_UPDATES queue gets the event
};

// The specification, as a table.
Expected Spec(v1::ReferralState s, v1::ReferralAction a, Who w) {
  using C = absl::StatusCode;
  const std::set<v1::ReferralState> undecided = {v1::SUBMITTED, v1::DELIVERED, v1::ESCALATED};
  Who owner = a == v1::CANCEL ? Who::kSender : Who::kReceiver;
  if (w != owner) return {C::kPermissionDenied};
  switch (a) {
    case v1::ACCEPT:
      return undecided.count(s) ? Expected{C::kOk, v1::ACCEPTED, Who::kSender}
                                : Expected{C::kFailedPrecondition};
    case v1::DECLINE:
      return undecided.count(s) ? Expected{C::kOk, v1::DECLINED, Who::kSender}
                                : Expected{C::kFailedPrecondition};
    case v1::ARRIVE:
      return s == v1::ACCEPTED ? Expected{C::kOk, v1::ARRIVED, Who::kSender}
                               : Expected{C::kFailedPrecondition};
    case v1::COMPLETE:
      return s == v1::ARRIVED ? Expected{C::kOk, v1::COMPLETED, Who::kSender}
                              : Expected{C::kFailedPrecondition};
    case v1::CANCEL:
      return (undecided.count(s) || s == v1::ACCEPTED)
                 ? Expected{C::kOk, v1::CANCELLED, Who::kReceiver}
                 : Expected{C::kFailedPrecondition};
    default:
      return {C::kInvalidArgument};
  }
}

using Combo = std::tuple<v1::ReferralState, v1::ReferralAction, Who>;

class ReferralTransitionTable : public WorkflowFixture,
                                public ::testing::WithParamInterface<Combo> {
 protected:
  // Puts a fresh referral into `state` directly in the store.
  std::string InState(v1::ReferralState state) {
    static int n = 0;
    std::string id = SubmitUp("setup-" + std::to_string(n++));
    auto rec = *store_->GetReferral(id);
    storage::ReferralChange c{
        id, rec.version,  state,    rec.receiver,
        0,  clock_.Now(), rec.body, {id, "test-setup", "", 0, clock_.Now(), ""},
        {}};
    EXPECT_TRUE(store_->ChangeReferral(c).ok());
    return id;
  }
  std::string Principal(Who w) {
    switch (w) {
      case Who::kSender:
        return kClinic;
      case Who::kReceiver:
        return kHospital;
      case Who::kOtherClinic:
        return kOtherClinic;
      case Who::kOperator:
        return kOperator;
    }
    return "";
  }
};

TEST_P(ReferralTransitionTable, FollowsTheSpecification) {
  auto [state, action, who] = GetParam();
  Expected want = Spec(state, action, who);
  std::string id = InState(state);
  auto before = *store_->GetReferral(id);
  size_t events_before = store_->ListReferralEvents(id)->size();
  auto messages_before = Messages();

  absl::Status got = Act(Principal(who), id, action);
  ASSERT_EQ(got.code(), want.code) << got;

  auto after = *store_->GetReferral(id);
  auto messages_after = Messages();
  if (want.code != absl::StatusCode::kOk) {
    EXPECT_EQ(after.state, before.state);
    EXPECT_EQ(after.version, before.version);
    EXPECT_EQ(store_->ListReferralEvents(id)->size(), events_before);
    EXPECT_EQ(messages_after, messages_before);
    return;
  }
  EXPECT_EQ(after.state, want.to);
  EXPECT_EQ(after.version, before.version + 1);
  EXPECT_EQ(after.decision_due_at, 0);  // a decision or a cancellation ends the deadline
  EXPECT_EQ(store_->ListReferralEvents(id)->size(), events_before + 1);
  std::string queue = Principal(want.notified) + "/referral-updates";
  EXPECT_EQ(messages_after[queue], messages_before[queue] + 1) << queue;
  uint64_t total_before = 0, total_after = 0;
  for (auto& [q, n] : messages_before) total_before += n;
  for (auto& [q, n] : messages_after) total_after += n;
  EXPECT_EQ(total_after, total_before + 1) << "exactly one event message";
  auto update = LastOn(queue).referral_update();
  EXPECT_EQ(update.referral_id(), id);
  EXPECT_EQ(update.event().action(), action);
  EXPECT_EQ(update.event().from_state(), state);
  EXPECT_EQ(update.event().to_state(), want.to);
  EXPECT_EQ(update.event().actor().institution(), Principal(who));
  EXPECT_EQ(update.state(), want.to);
}

INSTANTIATE_TEST_SUITE_P(
    AllCombinations, ReferralTransitionTable,
    ::testing::Combine(
        ::testing::Values(v1::SUBMITTED, v1::DELIVERED, v1::ACCEPTED, v1::DECLINED, v1::ARRIVED,
                          v1::COMPLETED, v1::CANCELLED, v1::ESCALATED),
        ::testing::Values(v1::ACCEPT, v1::DECLINE, v1::ARRIVE, v1::COMPLETE, v1::CANCEL),
        ::testing::Values(Who::kSender, Who::kReceiver, Who::kOtherClinic, Who::kOperator)),
    [](const ::testing::TestParamInfo<Combo>& combo) {
      return v1::ReferralState_Name(std::get<0>(combo.param)) + "_" +
             v1::ReferralAction_Name(std::get<1>(combo.param)) + "_by" +
             WhoName(std::get<2>(combo.param));
    });

// The broker's own actions: DELIVER (the receiver's system acked) and ESCALATE (deadline).
class BrokerActionTable : public ReferralTransitionTable {};

TEST_F(BrokerActionTable, DeliverOnlyFromSubmittedAndOnlyForTheCurrentReceiver) {
  for (auto state : {v1::SUBMITTED, v1::DELIVERED, v1::ACCEPTED, v1::DECLINED, v1::ARRIVED,
                     v1::COMPLETED, v1::CANCELLED, v1::ESCALATED}) {
    std::string id = InState(state);
    auto messages_before = Messages();
    ASSERT_TRUE(workflow_->MarkDelivered(id, kAlternate).ok());  // not the receiver: no effect
    EXPECT_EQ(store_->GetReferral(id)->state, state);
    ASSERT_TRUE(workflow_->MarkDelivered(id, kHospital).ok());
    auto after = *store_->GetReferral(id);
    if (state == v1::SUBMITTED) {
      EXPECT_EQ(after.state, v1::DELIVERED);
      std::string q = std::string(kClinic) + "/referral-updates";
      EXPECT_EQ(Messages()[q], messages_before[q] + 1);
      EXPECT_EQ(LastOn(q).referral_update().event().action(), v1::DELIVER);
    } else {
      EXPECT_EQ(after.state, state) << v1::ReferralState_Name(state);
      EXPECT_EQ(Messages(), messages_before);
    }
  }
}

TEST_F(BrokerActionTable, EscalateOnlyWhileADecisionIsPending) {
  std::vector<std::pair<std::string, v1::ReferralState>> ids;
  for (auto state : {v1::SUBMITTED, v1::DELIVERED, v1::ACCEPTED, v1::DECLINED, v1::ARRIVED,
                     v1::COMPLETED, v1::CANCELLED, v1::ESCALATED}) {
    ids.push_back({InState(state), state});
  }
  // InState clears the stored deadline; put it back for the ones still awaiting a decision.
  for (auto& [id, state] : ids) {
    if (state != v1::SUBMITTED && state != v1::DELIVERED) continue;
    auto rec = *store_->GetReferral(id);
    storage::ReferralChange c{id,
                              rec.version,
                              rec.state,
                              rec.receiver,
                              clock_.Now() + 1000,
                              clock_.Now(),
                              rec.body,
                              {id, "test-setup", "", 0, clock_.Now(), ""},
                              {}};
    ASSERT_TRUE(store_->ChangeReferral(c).ok());
  }
  clock_.Advance(49LL * 3600 * 1000000);
  auto n = workflow_->EscalateDue();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2u);
  for (auto& [id, state] : ids) {
    bool pending = state == v1::SUBMITTED || state == v1::DELIVERED;
    EXPECT_EQ(store_->GetReferral(id)->state, pending ? v1::ESCALATED : state);
  }
  EXPECT_EQ(*workflow_->EscalateDue(), 0u);  // never twice
}

}  // namespace
}  // namespace refbroker::testing

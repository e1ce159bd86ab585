// The referral workflow beyond the transition table: submission defaults, deadlines,
// idempotent transitions, the DOWN leg and its rules, escalation with re-routing, queries.

#include <gtest/gtest.h>

#include "google/protobuf/util/time_util.h"
#include "tests/support/workflow_fixture.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;
using google::protobuf::util::TimeUtil;
constexpr Micros kMinute = 60LL * 1000000;

class ReferralWorkflowTest : public WorkflowFixture {
 protected:
  // UP referral taken to COMPLETED by the receiving hospital.
  std::string CompletedUp(const std::string& request_id) {
    std::string id = SubmitUp(request_id);
    EXPECT_TRUE(Act(kHospital, id, v1::ACCEPT).ok());
    EXPECT_TRUE(Act(kHospital, id, v1::ARRIVE).ok());
    EXPECT_TRUE(Act(kHospital, id, v1::COMPLETE).ok());
    return id;
  }
  v1::Referral Down(const std::string& up_id, const std::string& request_id) {
    auto up = workflow_->Get(P(kHospital), up_id);
    v1::Referral r = NewReferral(request_id);
    *r.mutable_patient() = up->patient();
    r.set_direction(v1::DOWN);
    r.mutable_from()->set_institution(kHospital);
    r.mutable_from()->set_department("心内科");
    r.set_to_institution("");
    r.set_continues_referral_id(up_id);
    r.set_down_reason(v1::REHABILITATION);
    r.set_follow_up_plan("阿司匹林 100mg qd；两周后乡镇卫生院复查心电图");
    return r;
  }
};

TEST_F(ReferralWorkflowTest, AnUpReferralStartsAJourneyWithADeadlineByPriority) {
  auto out = workflow_->Submit(P(kClinic), NewReferral("r1", v1::EMERGENCY));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->referral.state(), v1::SUBMITTED);
  EXPECT_EQ(out->referral.journey_id().rfind("jny-", 0), 0u);
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(out->referral.decision_deadline()),
            kStart + 10 * kMinute);
  auto routine = workflow_->Submit(P(kClinic), NewReferral("r2", v1::ROUTINE));
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(routine->referral.decision_deadline()),
            kStart + 48 * 60 * kMinute);
  auto got = workflow_->Get(P(kClinic), out->referral.id());
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->history_size(), 1);
  EXPECT_EQ(got->history(0).action(), v1::SUBMIT);
  EXPECT_EQ(got->history(0).actor().institution(), kClinic);
}

TEST_F(ReferralWorkflowTest, ATransitionRetryIsIdempotentAndItsIdCannotBeReused) {
  std::string id = SubmitUp("r1");
  auto first = workflow_->Transition(P(kHospital), Request(id, v1::ACCEPT, "acc-1"));
  auto again = workflow_->Transition(P(kHospital), Request(id, v1::ACCEPT, "acc-1"));
  ASSERT_TRUE(first.ok() && again.ok()) << again.status();
  EXPECT_FALSE(first->duplicate);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->referral.state(), v1::ACCEPTED);
  EXPECT_EQ(again->referral.history_size(), 2);
  auto reused = workflow_->Transition(P(kHospital), Request(id, v1::ARRIVE, "acc-1"));
  EXPECT_TRUE(absl::IsAlreadyExists(reused.status())) << reused.status();
}

TEST_F(ReferralWorkflowTest, TransitionRequestsAreValidatedFieldByField) {
  std::string id = SubmitUp("r1");
  auto req = Request(id, v1::DECLINE, "d-1");
  req.mutable_decline()->clear_reason();
  auto s = workflow_->Transition(P(kHospital), req).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(std::string(s.message()).rfind("decline.reason:", 0), 0u) << s;
  req = Request(id, v1::COMPLETE, "c-1");
  req.mutable_complete()->clear_outcome_summary();
  EXPECT_EQ(std::string(workflow_->Transition(P(kHospital), req).status().message())
                .rfind("complete.outcome_summary:", 0),
            0u);
  req = Request(id, v1::ACCEPT, "");
  EXPECT_EQ(std::string(workflow_->Transition(P(kHospital), req).status().message())
                .rfind("client_request_id:", 0),
            0u);
  req = Request(id, v1::ACCEPT, "a-1");
  req.clear_doctor();
  EXPECT_EQ(
      std::string(workflow_->Transition(P(kHospital), req).status().message()).rfind("doctor:", 0),
      0u);
}

TEST_F(ReferralWorkflowTest, ACompletedUpReferralContinuesDownToTheSameJourney) {
  std::string up = CompletedUp("up-1");
  auto down = workflow_->Submit(P(kHospital), Down(up, "down-1"));
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(down->referral.direction(), v1::DOWN);
  EXPECT_EQ(down->referral.to_institution(), kClinic);  // back to the township it came from
  EXPECT_EQ(down->referral.journey_id(), workflow_->Get(P(kClinic), up)->journey_id());
  EXPECT_EQ(Messages()[std::string(kClinic) + "/referrals"], 1u);
  // Now the township is the receiver of the DOWN leg.
  EXPECT_TRUE(Act(kClinic, down->referral.id(), v1::ACCEPT).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(Act(kHospital, down->referral.id(), v1::ARRIVE)));
  v1::ListReferralsRequest journey;
  journey.set_journey_id(down->referral.journey_id());
  auto legs = workflow_->List(P(kClinic), journey);
  ASSERT_TRUE(legs.ok());
  EXPECT_EQ(legs->referrals_size(), 2);
}

TEST_F(ReferralWorkflowTest, DownReferralRulesNameTheField) {
  std::string up = CompletedUp("up-1");
  std::string open_up = SubmitUp("up-open");
  struct Case {
    std::function<void(v1::Referral&)> mutate;
    const auth::Principal* as;
    absl::StatusCode code;
    const char* field;
  };
  const auth::Principal* hospital = &P(kHospital);
  std::vector<Case> cases = {
      {[](auto& r) { r.clear_continues_referral_id(); }, hospital,
       absl::StatusCode::kInvalidArgument, "referral.continues_referral_id"},
      {[](auto& r) { r.set_continues_referral_id("ref-missing"); }, hospital,
       absl::StatusCode::kNotFound, "referral.continues_referral_id"},
      {[&](auto& r) { r.set_continues_referral_id(open_up); }, hospital,
       absl::StatusCode::kFailedPrecondition, "referral.continues_referral_id"},
      {[](auto& r) { r.clear_down_reason(); }, hospital, absl::StatusCode::kInvalidArgument,
       "referral.down_reason"},
      {[](auto& r) { r.clear_follow_up_plan(); }, hospital, absl::StatusCode::kInvalidArgument,
       "referral.follow_up_plan"},
      {[](auto& r) { r.set_to_institution(kAlternate); }, hospital,
       absl::StatusCode::kInvalidArgument, "referral.to_institution"},
      {[this](auto& r) { *r.mutable_patient() = NewReferral("someone-else").patient(); }, hospital,
       absl::StatusCode::kInvalidArgument, "referral.patient"},
      {[](auto& r) { r.mutable_from()->set_institution(kAlternate); }, &P(kAlternate),
       absl::StatusCode::kPermissionDenied, "referral.continues_referral_id"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    v1::Referral r = Down(up, "bad-down-" + std::to_string(i));
    cases[i].mutate(r);
    auto s = workflow_->Submit(*cases[i].as, r).status();
    EXPECT_EQ(s.code(), cases[i].code) << i << ": " << s;
    EXPECT_EQ(std::string(s.message()).rfind(std::string(cases[i].field) + ":", 0), 0u)
        << i << ": " << s.message();
  }
  ASSERT_TRUE(workflow_->Submit(P(kHospital), Down(up, "down-ok")).ok());
  auto retry = workflow_->Submit(P(kHospital), Down(up, "down-ok"));
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->duplicate);
  auto second = workflow_->Submit(P(kHospital), Down(up, "down-second")).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(second)) << second;
}

TEST_F(ReferralWorkflowTest, EscalationReroutesToTheAlternateWithHistoryKept) {
  domain::WorkflowOptions options;
  options.reroutes.push_back({kHospital, "", kAlternate});
  Open(options);
  std::string id = SubmitUp("r1", v1::EMERGENCY);
  auto before = Messages();
  clock_.Advance(9 * kMinute);
  EXPECT_EQ(*workflow_->EscalateDue(), 0u);
  clock_.Advance(2 * kMinute);
  EXPECT_EQ(*workflow_->EscalateDue(), 1u);
  EXPECT_EQ(*workflow_->EscalateDue(), 0u);
  auto r = workflow_->Get(P(kClinic), id);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state(), v1::ESCALATED);
  EXPECT_EQ(r->to_institution(), kAlternate);
  ASSERT_EQ(r->history_size(), 2);
  EXPECT_EQ(r->history(1).rerouted_from(), kHospital);
  EXPECT_EQ(r->history(1).rerouted_to(), kAlternate);
  auto after = Messages();
  EXPECT_EQ(after["pingyu/alliance"], before["pingyu/alliance"] + 1);
  EXPECT_EQ(after[std::string(kAlternate) + "/referrals"], 1u);
  EXPECT_EQ(after[std::string(kHospital) + "/referral-updates"], 1u);
  EXPECT_EQ(after[std::string(kClinic) + "/referral-updates"], 1u);
  EXPECT_EQ(LastOn("pingyu/alliance").referral_update().event().action(), v1::ESCALATE);
  EXPECT_TRUE(absl::IsPermissionDenied(Act(kHospital, id, v1::ACCEPT)));
  EXPECT_TRUE(Act(kAlternate, id, v1::ACCEPT).ok());
}

TEST_F(ReferralWorkflowTest, ListShowsEachPrincipalOnlyItsOwnAndPages) {
  for (int i = 0; i < 5; ++i) {
    SubmitUp("r" + std::to_string(i));
    clock_.Advance(1000);
  }
  v1::ListReferralsRequest req;
  req.set_page_size(2);
  auto page = workflow_->List(P(kClinic), req);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->referrals_size(), 2);
  int total = page->referrals_size();
  while (!page->next_page_token().empty()) {
    req.set_page_token(page->next_page_token());
    page = workflow_->List(P(kClinic), req);
    ASSERT_TRUE(page.ok());
    total += page->referrals_size();
  }
  EXPECT_EQ(total, 5);
  v1::ListReferralsRequest all;
  EXPECT_EQ(workflow_->List(P(kOtherClinic), all)->referrals_size(), 0);
  EXPECT_EQ(workflow_->List(P(kOperator), all)->referrals_size(), 5);
  EXPECT_EQ(workflow_->List(P(kHospital), all)->referrals_size(), 5);
  all.set_state(v1::ACCEPTED);
  EXPECT_EQ(workflow_->List(P(kOperator), all)->referrals_size(), 0);
  v1::ListReferralsRequest bad;
  bad.set_page_token("garbage");
  auto s = workflow_->List(P(kClinic), bad).status();
  EXPECT_EQ(std::string(s.message()).rfind("page_token:", 0), 0u) << s;
  EXPECT_TRUE(absl::IsPermissionDenied(
      workflow_
          ->Get(P(kOtherClinic), page->referrals_size() ? page->referrals(0).id() : SubmitUp("x"))
          .status()));
}

}  // namespace
}  // namespace refbroker::testing

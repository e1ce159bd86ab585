// SubmitReferrals through the real broker: a pipelined batch where each answer names its
// position and only the bad submissions are refused (the field named, nothing stored), repeats
// answered with the original, every acknowledged one delivered; a stranger's stream refused.

#include "client/refclient/referral_stream.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>

#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

struct Answers {
  std::mutex mu;
  std::map<uint64_t, absl::StatusOr<v1::SubmitReferralResponse>> by_position;

  refclient::ReferralStream::OnResult Collector() {
    return [this](uint64_t position, absl::StatusOr<v1::SubmitReferralResponse> answer) {
      std::lock_guard<std::mutex> lock(mu);
      by_position.emplace(position, std::move(answer));
    };
  }
};

TEST(SubmitStream, EachSubmissionIsAnsweredByPositionAndOnlyTheBadOnesAreRefused) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  auto clinic = ConnectAs(broker.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  CollectingSubscriber inbox(*hospital, kPeopleHospital, "his", 64);

  constexpr int kCount = 300;
  std::vector<v1::Referral> batch;
  for (int i = 0; i < kCount; ++i) {
    batch.push_back(
        MakeReferral(kXiyangdian, "batch-" + std::to_string(i), v1::ROUTINE, kPeopleHospital));
  }
  batch[49].mutable_patient()->clear_name();  // position 50
  batch[149].clear_diagnoses();               // position 150
  Answers answers;
  {
    refclient::ReferralStream stream(*clinic, 64, answers.Collector());
    for (int i = 0; i < kCount; ++i) {
      auto position = stream.Send(batch[i]);
      ASSERT_TRUE(position.ok()) << position.status();
      EXPECT_EQ(*position, static_cast<uint64_t>(i + 1));
    }
    absl::Status end = stream.Close();
    ASSERT_TRUE(end.ok()) << end;
  }
  ASSERT_EQ(answers.by_position.size(), static_cast<size_t>(kCount));
  std::set<std::string> ids;
  for (auto& [position, answer] : answers.by_position) {
    if (position == 50) {
      EXPECT_EQ(answer.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(answer.status().message().find("patient.name"), std::string::npos)
          << answer.status();
    } else if (position == 150) {
      EXPECT_EQ(answer.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(answer.status().message().find("diagnoses"), std::string::npos) << answer.status();
    } else {
      ASSERT_TRUE(answer.ok()) << position << ": " << answer.status();
      EXPECT_FALSE(answer->duplicate());
      EXPECT_EQ(answer->referral().client_request_id(), batch[position - 1].client_request_id());
      ids.insert(answer->referral().id());
    }
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kCount - 2));
  // Nothing of the refused ones was stored.
  EXPECT_EQ(broker.CountRows("referrals"), kCount - 2);

  // Every acknowledged submission is delivered, once each.
  ASSERT_TRUE(inbox.WaitFor(ids.size(), 30));
  std::set<std::string> delivered;
  for (const auto& d : inbox.deliveries()) delivered.insert(d.referral().id());
  EXPECT_EQ(delivered, ids);

  // The same batch again (a HIS that did not see the answers): the originals, no new referral.
  Answers again;
  {
    refclient::ReferralStream stream(*clinic, 16, again.Collector());
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(stream.Send(batch[i]).ok());
    absl::Status end = stream.Close();
    ASSERT_TRUE(end.ok()) << end;
  }
  ASSERT_EQ(again.by_position.size(), 20u);
  for (auto& [position, answer] : again.by_position) {
    ASSERT_TRUE(answer.ok()) << answer.status();
    EXPECT_TRUE(answer->duplicate());
    EXPECT_EQ(answer->referral().id(), answers.by_position.at(position)->referral().id());
  }
  EXPECT_EQ(broker.CountRows("referrals"), kCount - 2);
}

TEST(SubmitStream, AnotherInstitutionsReferralIsRefusedAndAStrangersStreamIsUnauthenticated) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start().ok());
  // A clinic may not submit in another clinic's name: that submission only is refused.
  auto guhuai = ConnectAs(broker.address(), "guhuai-thc");
  Answers answers;
  {
    refclient::ReferralStream stream(*guhuai, 8, answers.Collector());
    ASSERT_TRUE(stream.Send(MakeReferral(kXiyangdian, "not-mine")).ok());
    ASSERT_TRUE(stream.Send(MakeReferral(kGuhuai, "mine")).ok());
    absl::Status end = stream.Close();
    ASSERT_TRUE(end.ok()) << end;
  }
  ASSERT_EQ(answers.by_position.size(), 2u);
  EXPECT_EQ(answers.by_position.at(1).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(answers.by_position.at(2).ok()) << answers.by_position.at(2).status();

  auto stranger = ConnectAs(broker.address(), "stranger");
  Answers none;
  refclient::ReferralStream stream(*stranger, 8, none.Collector());
  stream.Send(MakeReferral(kXiyangdian, "stranger")).IgnoreError();
  EXPECT_EQ(stream.Close().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(none.by_position.empty());
  EXPECT_EQ(broker.CountRows("referrals"), 1);
}

}  // namespace
}  // namespace refbroker::testing

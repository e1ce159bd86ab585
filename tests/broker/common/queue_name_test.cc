#include "broker/common/queue_name.h"

#include <gtest/gtest.h>

namespace refbroker {
namespace {

TEST(QueueName, RoundTripsThroughText) {
  QueueName q{"12411723417580001B", refbroker::v1::REFERRALS};
  EXPECT_EQ(q.ToString(), "12411723417580001B/referrals");
  auto parsed = QueueName::Parse(q.ToString());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(*parsed, q);
}

TEST(QueueName, RejectsMalformedText) {
  EXPECT_FALSE(QueueName::Parse("nokind").ok());
  EXPECT_FALSE(QueueName::Parse("owner/unknown").ok());
  EXPECT_FALSE(QueueName::Parse("/referrals").ok());
}

TEST(QueueName, ProtoErrorsNameTheField) {
  refbroker::v1::QueueRef ref;
  ref.set_kind(refbroker::v1::REFERRALS);
  auto s = QueueName::FromProto(ref, "open.queue").status();
  EXPECT_EQ(s.message(), "open.queue.owner: required");
  ref.set_owner("x");
  ref.clear_kind();
  EXPECT_EQ(QueueName::FromProto(ref, "open.queue").status().message(),
            "open.queue.kind: required");
}

}  // namespace
}  // namespace refbroker

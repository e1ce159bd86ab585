// refctl dlq requeue --from: the JSON `refctl --json dlq list` prints goes back in as the list of
// dead letters to requeue; anything else is refused with the entry and field named.

#include "client/ctl/requeue_list.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

namespace refctl {
namespace {

refbroker::v1::DeadLetter Letter(const std::string& owner, uint64_t seq) {
  refbroker::v1::DeadLetter d;
  d.mutable_queue()->set_owner(owner);
  d.mutable_queue()->set_kind(refbroker::v1::REFERRALS);
  d.set_consumer_group("his");
  d.set_sequence(seq);
  d.set_subject_id("R-" + std::to_string(seq));
  d.set_attempts(3);
  d.set_last_error("cannot map department");
  d.mutable_dead_at()->set_seconds(1790000000);
  return d;
}

// As refctl's PrintJson writes it.
std::string AsListed(const refbroker::v1::ListDeadLettersResponse& list) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(list, &out, opts).ok());
  return out;
}

TEST(RequeueList, TheJsonDlqListPrintsComesBackAsOneRequestPerDeadLetter) {
  refbroker::v1::ListDeadLettersResponse list;
  *list.add_dead_letters() = Letter("12411723417580001B", 7);
  *list.add_dead_letters() = Letter("12411723417580001B", 9);
  *list.add_dead_letters() = Letter("12411723417580001B", 7);  // listed twice: once
  auto r = ParseRequeueList(AsListed(list));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].queue().owner(), "12411723417580001B");
  EXPECT_EQ((*r)[0].queue().kind(), refbroker::v1::REFERRALS);
  EXPECT_EQ((*r)[0].consumer_group(), "his");
  EXPECT_EQ((*r)[0].sequence(), 7u);
  EXPECT_EQ((*r)[1].sequence(), 9u);
}

TEST(RequeueList, AnEmptyListAsksForNothing) {
  auto r = ParseRequeueList("{}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->empty());
}

TEST(RequeueList, AnEntryWithoutASequenceWouldMeanTheWholeQueueAndIsRefused) {
  refbroker::v1::ListDeadLettersResponse list;
  *list.add_dead_letters() = Letter("A", 1);
  *list.add_dead_letters() = Letter("A", 0);
  auto r = ParseRequeueList(AsListed(list));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("dead_letters[1].sequence"), std::string::npos) << r.status();
}

TEST(RequeueList, MissingFieldsAreNamed) {
  struct Case {
    const char* json;
    const char* field;
  };
  const Case cases[] = {
      {R"({"dead_letters":[{"queue":{"kind":"REFERRALS"},"consumer_group":"his","sequence":"3"}]})",
       "dead_letters[0].queue.owner"},
      {R"({"dead_letters":[{"queue":{"owner":"A"},"consumer_group":"his","sequence":"3"}]})",
       "dead_letters[0].queue.kind"},
      {R"({"dead_letters":[{"queue":{"owner":"A","kind":"REFERRALS"},"sequence":"3"}]})",
       "dead_letters[0].consumer_group"},
      {R"({"dead_letters":[{"queue":{"owner":"A","kind":99},"consumer_group":"g","sequence":"3"}]})",
       "dead_letters[0].queue.kind"},
  };
  for (const auto& c : cases) {
    auto r = ParseRequeueList(c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_NE(r.status().message().find(c.field), std::string::npos) << r.status();
  }
}

TEST(RequeueList, TextThatIsNotTheListIsRefused) {
  for (const char* text : {"", "not json", "[1,2]", R"({"dead_letters":[{"sequense":"1"}]})",
                           R"({"dead_letters":[{"sequence":"-1"}]})", "{\"dead_letters\":"}) {
    auto r = ParseRequeueList(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(r.status().message().find("--from"), std::string::npos) << r.status();
  }
}

TEST(RequeueList, MoreThanOneListingIsRefused) {
  refbroker::v1::ListDeadLettersResponse list;
  for (int i = 1; i <= kMaxRequeueEntries + 1; ++i) *list.add_dead_letters() = Letter("A", i);
  auto r = ParseRequeueList(AsListed(list));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("at most 1000"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace refctl

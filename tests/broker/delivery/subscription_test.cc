// Subscription on a real SQLite store: how a subscriber's window is filled and refilled, and
// what its acks write. The sink stands where the gRPC stream is in production.

#include "broker/delivery/subscription.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <vector>

#include "broker/common/clock.h"
#include "broker/common/queue_name.h"
#include "broker/delivery/delivery_engine.h"
#include "broker/storage/sqlite_store.h"

namespace refbroker::delivery {
namespace {

const char kQueue[] = "12411723417580001B/referrals";

// Keeps what the subscription sends; waits for a count of deliveries.
class CollectingSink : public DeliverySink {
 public:
  void Send(refbroker::v1::Delivery delivery) override {
    std::lock_guard<std::mutex> lock(mu_);
    sent_.push_back(std::move(delivery));
    cv_.notify_all();
  }
  void Fail(const absl::Status& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = status;
    cv_.notify_all();
  }
  // The first n deliveries once they are there (fewer after 10 s).
  std::vector<refbroker::v1::Delivery> WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return sent_.size() >= n; });
    return sent_;
  }
  absl::Status WaitForFailure() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return !failed_.ok(); });
    return failed_;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_.size();
  }
  absl::Status failed() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<refbroker::v1::Delivery> sent_;
  absl::Status failed_;
};

class SubscriptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("refbroker-subscription-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    storage::SqliteOptions o;
    o.path = (dir_ / "store.db").string();
    auto s = storage::SqliteStore::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    engine_ = std::make_unique<DeliveryEngine>(*store_, SystemClock::Get(), EngineOptions{});
  }
  void TearDown() override {
    engine_->Shutdown();
    engine_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Enqueue(int n) {
    for (int i = 0; i < n; ++i) {
      storage::ReferralRecord r;
      r.id = "ref-" + std::to_string(next_);
      r.sender = "124117234175811018";
      r.receiver = "12411723417580001B";
      r.client_request_id = "req-" + std::to_string(next_);
      r.request_digest = "digest";
      r.state = 1;
      r.priority = 3;
      r.submitted_at = r.updated_at = 1;
      r.body = "body";
      r.journey_id = "jny-" + std::to_string(next_);
      r.alliance = "pingyu";
      ++next_;
      auto res = store_->SubmitReferral(r, storage::ReferralEventRecord{r.id, "", "", 1, 1, "e"},
                                        {storage::NewMessage{kQueue, 3, r.id, ""}});
      ASSERT_TRUE(res.ok()) << res.status();
    }
  }
  std::shared_ptr<Subscription> Subscribe(uint32_t window, std::shared_ptr<CollectingSink> sink,
                                          Reader reader = {}) {
    auto queue = QueueName::Parse(kQueue);
    EXPECT_TRUE(queue.ok());
    return engine_->Subscribe(*queue, "his", window, 0, sink, std::move(reader));
  }
  // Waits until the store's commit count stops moving (the subscription's writes have landed).
  uint64_t SettledCommits() {
    uint64_t seen = store_->commits();
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      uint64_t now = store_->commits();
      if (now == seen && i >= 5) break;
      seen = now;
    }
    return seen;
  }

  // The sequences of the group's messages deliverable now (leased, as another member would).
  std::vector<uint64_t> Deliverable() {
    storage::LeaseRequest req;
    req.queue = kQueue;
    req.group = "his";
    req.max_messages = 10;
    req.now = SystemClock::Get().Now();
    req.lease_until = req.now + 1000000;
    auto leased = store_->Lease(req);
    EXPECT_TRUE(leased.ok()) << leased.status();
    std::vector<uint64_t> out;
    if (leased.ok()) {
      for (const auto& m : leased->messages) out.push_back(m.sequence);
    }
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<storage::SqliteStore> store_;
  std::unique_ptr<DeliveryEngine> engine_;
  int next_ = 1;
};

TEST_F(SubscriptionTest, TheAcksAndTheLeaseThatRefillsTheWindowAreOneCommit) {
  Enqueue(6);
  auto sink = std::make_shared<CollectingSink>();
  auto sub = Subscribe(2, sink);
  auto first = sink->WaitFor(2);
  ASSERT_EQ(first.size(), 2u);
  uint64_t before = SettledCommits();
  EXPECT_EQ(sink->count(), 2u) << "more than the window was sent";
  // One ack (one flush: two acks could arrive in two flushes, a commit each).
  sub->Ack(first[0].sequence());
  auto second = sink->WaitFor(3);
  ASSERT_EQ(second.size(), 3u);
  EXPECT_EQ(second[2].attempt(), 1u);
  EXPECT_EQ(SettledCommits(), before + 1) << "the ack and the refill took separate commits";
  EXPECT_EQ(sink->count(), 3u);
  // The acks are durable: as the window turns, every message comes once.
  for (int i = 1; i < 6; ++i) sub->Ack(sink->WaitFor(static_cast<size_t>(i + 1))[i].sequence());
  auto third = sink->WaitFor(6);
  ASSERT_EQ(third.size(), 6u);
  std::vector<uint64_t> sequences;
  for (const auto& d : third) sequences.push_back(d.sequence());
  std::sort(sequences.begin(), sequences.end());
  EXPECT_EQ(std::unique(sequences.begin(), sequences.end()), sequences.end())
      << "an acked message was delivered again";
}

TEST_F(SubscriptionTest, AReaderNoLongerAllowedHasItsAcksWrittenAndIsSentNothingMore) {
  Enqueue(4);
  auto sink = std::make_shared<CollectingSink>();
  auto allowed = std::make_shared<std::atomic<bool>>(true);
  Reader reader;
  reader.still_allowed = [allowed]() -> absl::Status {
    return *allowed ? absl::OkStatus() : absl::PermissionDeniedError("certificate revoked");
  };
  auto sub = Subscribe(2, sink, reader);
  auto first = sink->WaitFor(2);
  ASSERT_EQ(first.size(), 2u);
  *allowed = false;
  sub->Ack(first[0].sequence());
  EXPECT_EQ(sink->WaitForFailure().code(), absl::StatusCode::kPermissionDenied);
  SettledCommits();
  EXPECT_EQ(sink->count(), 2u);
  // The ack was written; the other lease went back to the group.
  std::vector<uint64_t> sequences = Deliverable();
  EXPECT_EQ(sequences.size(), 3u);
  EXPECT_EQ(std::count(sequences.begin(), sequences.end(), first[0].sequence()), 0)
      << "the acked message is deliverable again";
}

// An ack of a sequence the group never had ends the stream with INVALID_ARGUMENT naming the
// field; what the same transaction leased (and recorded as delivered) is sent before the
// stream ends, then given back to the group with the rest.
TEST_F(SubscriptionTest, AnAckOfAnUnknownSequenceEndsTheStreamAndKeepsTheOthers) {
  Enqueue(2);
  auto sink = std::make_shared<CollectingSink>();
  auto sub = Subscribe(4, sink);
  auto first = sink->WaitFor(2);
  ASSERT_EQ(first.size(), 2u);
  SettledCommits();
  // Two more, without a wake-up: the window has room, so the ack's transaction leases them.
  Enqueue(2);
  sub->Ack(999999);
  absl::Status failed = sink->WaitForFailure();
  EXPECT_EQ(failed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(failed.message().find("ack.sequence"), std::string::npos) << failed;
  SettledCommits();
  EXPECT_EQ(sink->count(), 4u) << "what the ack's transaction leased was not sent";
  // Nothing was acked: all four are deliverable again once the stream's leases are released.
  EXPECT_EQ(Deliverable().size(), 4u);
}

// A message delivered twice (its lease ran out) is answered twice; when the second answer comes
// after the first ack and a prune, the message is gone from the store. That answer, an ack or a
// nack, is a duplicate: the stream goes on. A sequence this stream was never sent still ends it
// (the test above).
TEST_F(SubscriptionTest, AnAnswerToADeliveryWhoseMessageWasPrunedIsADuplicateNotAnError) {
  Enqueue(1);
  auto sink = std::make_shared<CollectingSink>();
  auto sub = Subscribe(2, sink);
  auto first = sink->WaitFor(1);
  ASSERT_EQ(first.size(), 1u);
  const uint64_t sequence = first[0].sequence();
  sub->Ack(sequence);
  SettledCommits();
  auto pruned = store_->Prune(SystemClock::Get().Now() + 1000000);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  ASSERT_EQ(*pruned, 1u);
  sub->Ack(sequence);
  sub->Nack(sequence, "again");
  SettledCommits();
  Enqueue(1);
  engine_->Notify(kQueue);
  auto second = sink->WaitFor(2);
  ASSERT_EQ(second.size(), 2u) << sink->failed();
  EXPECT_NE(second[1].sequence(), sequence);
  EXPECT_TRUE(sink->failed().ok()) << sink->failed();
}

// The API's blocking calls and the subscriptions run on separate pools: with every API worker
// busy (a pipelined submit stream keeps hundreds of calls queued there), a subscription still
// starts, leases and delivers.
TEST_F(SubscriptionTest, DeliveryDoesNotWaitBehindTheCallsQueuedForTheApiWorkers) {
  Enqueue(2);
  // Shared with the blocked tasks, which may still be waking up when the test body returns.
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
  };
  auto gate = std::make_shared<Gate>();
  const int workers = EngineOptions{}.workers;
  for (int i = 0; i < workers + 8; ++i) {
    engine_->RunBlocking([gate] {
      std::unique_lock<std::mutex> lock(gate->mu);
      gate->cv.wait(lock, [&] { return gate->open; });
    });
  }
  auto sink = std::make_shared<CollectingSink>();
  auto sub = Subscribe(10, sink);
  auto got = sink->WaitFor(2);
  {
    std::lock_guard<std::mutex> lock(gate->mu);
    gate->open = true;
  }
  gate->cv.notify_all();
  EXPECT_EQ(got.size(), 2u) << "the subscription waited for the API's workers";
}

}  // namespace
}  // namespace refbroker::delivery

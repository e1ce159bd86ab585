#include "broker/delivery/subscription.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "broker/delivery/delivery_engine.h"
#include "google/protobuf/util/time_util.h"

namespace refbroker::delivery {
namespace {

using google::protobuf::util::TimeUtil;

// A safety net: even without notifications a subscription looks at its queue this often.
constexpr Micros kMaxIdleMicros = 5 * 1000 * 1000;

// How many of its last deliveries a stream remembers, so that a late answer to one of them is
// recognised after retention pruned its message (see DeliveredHere).
size_t DeliveredMemory(uint32_t window) { return std::max<size_t>(1024, size_t{16} * window); }

}  // namespace

Subscription::Subscription(DeliveryEngine& engine, QueueName queue, std::string group,
                           uint32_t window, std::shared_ptr<DeliverySink> sink, Reader reader)
    : engine_(engine),
      queue_(std::move(queue)),
      queue_text_(queue_.ToString()),
      group_(std::move(group)),
      window_(window),
      sink_(std::move(sink)),
      reader_(std::move(reader)),
      ack_follow_up_(engine.AckFollowUpFor(queue_)),
      strand_(boost::asio::make_strand(engine.delivery_pool().get_executor())),
      timer_(strand_) {}

void Subscription::Start(uint64_t replay_from) {
  boost::asio::post(strand_, [self = shared_from_this(), replay_from] {
    storage::Store& store = self->engine_.store();
    Micros now = self->engine_.clock().Now();
    absl::Status s = store.EnsureGroup(self->queue_text_, self->group_, now);
    if (s.ok() && replay_from > 0) {
      auto n = store.Replay(self->queue_text_, self->group_, replay_from, now);
      s = n.status();
    }
    if (!s.ok()) {
      self->FailAndClose(s);
      return;
    }
    self->started_ = true;
    self->Pump();
  });
}

void Subscription::Wake() {
  if (pump_queued_.exchange(true)) return;  // a pump is already on its way
  boost::asio::post(strand_, [self = shared_from_this()] {
    self->pump_queued_ = false;
    self->Pump();
  });
}

void Subscription::Pump() {
  if (closed_ || !started_) return;
  std::optional<storage::LeaseRequest> req = NextLease({});
  if (!req) return;
  auto leased = engine_.store().Lease(*req);
  if (!leased.ok()) {
    FailAndClose(leased.status());
    return;
  }
  Deliver(*leased);
}

std::optional<storage::LeaseRequest> Subscription::NextLease(
    const std::vector<uint64_t>& being_acked) {
  if (reader_.still_allowed) {
    if (absl::Status allowed = reader_.still_allowed(); !allowed.ok()) {
      FailAndClose(allowed);
      return std::nullopt;
    }
  }
  Micros now = engine_.clock().Now();
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    it = it->second <= now ? inflight_.erase(it) : std::next(it);
  }
  size_t held = inflight_.size();
  std::set<uint64_t> counted;
  for (uint64_t sequence : being_acked) {
    if (inflight_.count(sequence) > 0 && counted.insert(sequence).second) --held;
  }
  if (held >= window_) return std::nullopt;
  const EngineOptions& opt = engine_.options();
  storage::LeaseRequest req;
  req.queue = queue_text_;
  req.group = group_;
  req.max_messages = window_ - held;
  req.now = now;
  req.lease_until = req.now + static_cast<Micros>(opt.ack_deadline_ms) * 1000;
  req.max_attempts = opt.max_attempts;
  req.reader = reader_.id;
  req.reader_alliance = reader_.alliance;
  req.reader_peer = reader_.peer;
  return req;
}

void Subscription::Deliver(const storage::LeaseResult& leased) {
  const size_t memory = DeliveredMemory(window_);
  for (const storage::LeasedMessage& m : leased.messages) {
    inflight_[m.sequence] = m.lease_until;
    if (delivered_.size() < memory) {
      delivered_.push_back(m.sequence);
    } else {
      delivered_[delivered_next_] = m.sequence;
      delivered_next_ = (delivered_next_ + 1) % memory;
    }
    sink_->Send(ToDelivery(m));
    engine_.counters().delivered++;
    if (m.attempt > 1) engine_.counters().redelivered++;
  }
  ArmTimer(leased.next_visible_at);
}

void Subscription::ArmTimer(std::optional<Micros> next_visible_at) {
  Micros now = engine_.clock().Now();
  Micros at =
      next_visible_at ? std::min(*next_visible_at, now + kMaxIdleMicros) : now + kMaxIdleMicros;
  timer_.expires_after(std::chrono::microseconds(std::max<Micros>(at - now, 1000)));
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->Pump();
  });
}

bool Subscription::DeliveredHere(uint64_t sequence) const {
  return std::find(delivered_.begin(), delivered_.end(), sequence) != delivered_.end();
}

refbroker::v1::Delivery Subscription::ToDelivery(const storage::LeasedMessage& m) const {
  refbroker::v1::Delivery d;
  if (!d.ParseFromString(m.payload)) {
    spdlog::error("queue={} seq={} stored payload does not parse", queue_text_, m.sequence);
  }
  d.set_sequence(m.sequence);
  *d.mutable_queue() = queue_.ToProto();
  d.set_priority(static_cast<refbroker::v1::Priority>(m.priority));
  d.set_attempt(m.attempt);
  *d.mutable_enqueued_at() = TimeUtil::MicrosecondsToTimestamp(m.enqueued_at);
  *d.mutable_ack_deadline() = TimeUtil::MicrosecondsToTimestamp(m.lease_until);
  return d;
}

void Subscription::Ack(uint64_t sequence) {
  {
    std::lock_guard<std::mutex> lock(acks_mu_);
    pending_acks_.push_back(sequence);
    if (ack_flush_queued_) return;  // the queued flush takes this one too
    ack_flush_queued_ = true;
  }
  boost::asio::post(strand_, [self = shared_from_this()] { self->FlushAcks(); });
}

void Subscription::FlushAcks() {
  std::vector<uint64_t> batch;
  {
    std::lock_guard<std::mutex> lock(acks_mu_);
    batch.swap(pending_acks_);
    ack_flush_queued_ = false;
  }
  if (closed_ || batch.empty()) return;
  // The acks free room in the window: the lease that fills it again goes in the same
  // transaction (one commit per round of the window, not two). No room, or a reader no longer
  // allowed (NextLease closes the stream): the acks alone, which are kept either way.
  std::optional<storage::LeaseRequest> lease = NextLease(batch);
  std::vector<storage::AckResult> acks;
  storage::LeaseResult leased;
  if (lease) {
    auto both = engine_.store().AckThenLease(batch, ack_follow_up_, *lease);
    if (!both.ok()) {
      FailAndClose(both.status());
      return;
    }
    acks = std::move(both->acks);
    leased = std::move(both->leased);
  } else {
    auto results =
        engine_.store().AckBatch(queue_text_, group_, batch, engine_.clock().Now(), ack_follow_up_);
    if (!results.ok()) {
      if (!closed_) FailAndClose(results.status());
      return;
    }
    acks = std::move(*results);
  }
  for (const storage::AckResult& r : acks) {
    if (!r.found) {
      if (DeliveredHere(r.sequence)) {
        // A duplicate: the message was acked through another copy and pruned since.
        inflight_.erase(r.sequence);
        continue;
      }
      if (closed_) return;
      // What was leased with it (and recorded as delivered) goes out before the stream ends;
      // Shutdown then gives it back to the group.
      Deliver(leased);
      FailAndClose(absl::InvalidArgumentError(absl::StrCat("ack.sequence: sequence ", r.sequence,
                                                           " is not in group '", group_, "' of ",
                                                           queue_text_)));
      return;
    }
    engine_.counters().acked++;
    inflight_.erase(r.sequence);
    engine_.RunAckHook(queue_, r);
  }
  if (closed_) return;  // NextLease refused the reader: its acks are written, nothing more sent
  if (lease) {
    Deliver(leased);
  } else {
    Pump();
  }
}

void Subscription::Nack(uint64_t sequence, std::string reason) {
  boost::asio::post(strand_, [self = shared_from_this(), sequence, reason = std::move(reason)] {
    if (self->closed_) return;
    const EngineOptions& opt = self->engine_.options();
    Micros now = self->engine_.clock().Now();
    absl::Status s = self->engine_.store().Nack(
        self->queue_text_, self->group_, sequence, reason, opt.max_attempts,
        now + static_cast<Micros>(opt.nack_retry_delay_ms) * 1000, now);
    if (absl::IsNotFound(s) && self->DeliveredHere(sequence)) {
      // Acked through another copy and pruned since: nothing left to give back.
      self->inflight_.erase(sequence);
      self->Pump();
      return;
    }
    if (!s.ok()) {
      self->FailAndClose(absl::IsNotFound(s)
                             ? absl::InvalidArgumentError(std::string("nack.sequence: ") +
                                                          std::string(s.message()))
                             : s);
      return;
    }
    self->engine_.counters().nacked++;
    self->inflight_.erase(sequence);
    self->Pump();
    if (opt.nack_retry_delay_ms == 0) self->engine_.Notify(self->queue_text_);
  });
}

void Subscription::Close() {
  boost::asio::post(strand_, [self = shared_from_this()] {
    if (!self->closed_) self->Shutdown();
  });
}

void Subscription::Fail(const absl::Status& status) {
  boost::asio::post(strand_, [self = shared_from_this(), status] {
    if (!self->closed_) self->FailAndClose(status);
  });
}

void Subscription::FailAndClose(const absl::Status& status) {
  spdlog::warn("queue={} group={} subscription ends: {}", queue_text_, group_, status.ToString());
  sink_->Fail(status);
  Shutdown();  // the stream's OnDone will call Close(), which then finds it closed
}

void Subscription::Shutdown() {
  closed_ = true;
  timer_.cancel();
  std::vector<uint64_t> release;
  for (const auto& [seq, until] : inflight_) release.push_back(seq);
  inflight_.clear();
  absl::Status s = engine_.store().Release(queue_text_, group_, release, engine_.clock().Now());
  if (!s.ok()) {
    spdlog::warn("queue={} group={} release failed: {}", queue_text_, group_, s.ToString());
  }
  engine_.Unregister(this);
  // Other members of the group may take the released messages now.
  if (!release.empty()) engine_.Notify(queue_text_);
}

}  // namespace refbroker::delivery

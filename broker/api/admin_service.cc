#include "broker/api/admin_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "broker/api/internal/unary_call.h"
#include "broker/delivery/queue_summary.h"
#include "google/protobuf/util/time_util.h"
#include "refbroker/v1/referral.pb.h"

namespace refbroker::api {
namespace {

using google::protobuf::util::TimeUtil;

// "up" for queues of county-level receivers (they receive up-referrals), "down" for township.
std::string DirectionOf(const auth::Principal* owner) {
  if (owner == nullptr) return "";
  return owner->level == auth::Level::kTownship ? "down" : "up";
}

void FillStatus(const storage::QueueStats& stats, Micros now, delivery::DeliveryEngine& engine,
                refbroker::v1::QueueStatus& out) {
  out.set_retained(stats.retained);
  for (const storage::GroupStats& g : stats.groups) {
    auto* gs = out.add_groups();
    gs->set_consumer_group(g.group);
    gs->set_ready(g.ready);
    gs->set_in_flight(g.in_flight);
    gs->set_dead_letters(g.dead);
    gs->set_consumers(engine.Consumers(stats.queue, g.group));
  }
  delivery::QueueSummary s = delivery::Summarize(stats, now, engine);
  out.set_depth(s.depth);
  out.set_in_flight(s.in_flight);
  out.set_dead_letters(s.dead_letters);
  out.set_oldest_age_seconds(s.oldest_age_seconds);
}

}  // namespace

absl::Status AdminServiceImpl::DoListQueues(const auth::Principal& who,
                                            const refbroker::v1::ListQueuesRequest& request,
                                            refbroker::v1::ListQueuesResponse& response) {
  if (!request.owner().empty()) {
    if (absl::Status s = ctx_.policy.CanInspect(who, request.owner(), "owner"); !s.ok()) return s;
  }
  Micros now = ctx_.engine.clock().Now();
  auto stats = ctx_.engine.store().ListQueueStats();
  if (!stats.ok()) return stats.status();
  // Deadline breaches by owner: escalated referrals still waiting for a decision, escalated
  // consults not yet reported, counted by the store. Counted by whose queue they wait on, not
  // by the alliance of whoever sent them: a partner clinic's referral to one of an operator's
  // hospitals counts on that hospital's queue, which the listing shows the operator (what anyone
  // sees is decided queue by queue below).
  storage::DeadlineBreachFilter breach_filter;
  if (who.IsInstitution()) breach_filter.owner = who.id;
  if (!request.owner().empty()) breach_filter.owner = request.owner();
  auto breaches = ctx_.engine.store().CountDeadlineBreaches(breach_filter);
  if (!breaches.ok()) return breaches.status();
  std::map<std::string, storage::QueueStats> by_name;
  for (auto& q : *stats) by_name[q.queue] = std::move(q);
  // Every institution's referral queue is listed, even while empty.
  for (const auth::Principal& p : registry_.principals()) {
    if (!p.IsInstitution()) continue;
    std::string name = QueueName{p.id, refbroker::v1::REFERRALS}.ToString();
    by_name[name].queue = name;
  }
  for (auto& [name, q] : by_name) {
    auto parsed = QueueName::Parse(name);
    if (!parsed.ok()) continue;
    if (!request.owner().empty() && parsed->owner != request.owner()) continue;
    if (!ctx_.policy.CanInspect(who, parsed->owner, "owner").ok()) continue;
    auto* out = response.add_queues();
    *out->mutable_queue() = parsed->ToProto();
    const auth::Principal* owner = registry_.Find(parsed->owner);
    out->set_owner_name(owner ? owner->name : parsed->owner);
    if (parsed->kind == refbroker::v1::REFERRALS) out->set_direction(DirectionOf(owner));
    FillStatus(q, now, ctx_.engine, *out);
    if (parsed->kind == refbroker::v1::REFERRALS) {
      out->set_deadline_breaches(breaches->referrals[parsed->owner]);
    } else if (parsed->kind == refbroker::v1::CONSULTS) {
      out->set_deadline_breaches(breaches->consults[parsed->owner]);
    }
  }
  return absl::OkStatus();
}

absl::Status AdminServiceImpl::DoListDeadLetters(
    const auth::Principal& who, const refbroker::v1::ListDeadLettersRequest& request,
    refbroker::v1::ListDeadLettersResponse& response) {
  storage::DeadLetterFilter filter;
  if (request.has_queue()) {
    auto q = QueueName::FromProto(request.queue(), "queue");
    if (!q.ok()) return q.status();
    if (absl::Status s = ctx_.policy.CanInspect(who, q->owner, "queue.owner"); !s.ok()) return s;
    filter.queue = q->ToString();
  }
  filter.group = request.consumer_group();
  if (request.limit() > 1000) return absl::InvalidArgumentError("limit: at most 1000");
  filter.limit = request.limit() == 0 ? 100 : request.limit();
  auto dead = ctx_.engine.store().ListDeadLetters(filter);
  if (!dead.ok()) return dead.status();
  for (const storage::DeadLetterRecord& d : *dead) {
    auto q = QueueName::Parse(d.queue);
    if (!q.ok() || !ctx_.policy.CanInspect(who, q->owner, "queue.owner").ok()) continue;
    auto* out = response.add_dead_letters();
    *out->mutable_queue() = q->ToProto();
    out->set_consumer_group(d.group);
    out->set_sequence(d.sequence);
    out->set_subject_id(d.subject_id);
    out->set_attempts(d.attempts);
    out->set_last_error(d.last_error);
    *out->mutable_enqueued_at() = TimeUtil::MicrosecondsToTimestamp(d.enqueued_at);
    *out->mutable_dead_at() = TimeUtil::MicrosecondsToTimestamp(d.dead_at);
  }
  return absl::OkStatus();
}

absl::Status AdminServiceImpl::DoRequeue(const auth::Principal& who,
                                         const refbroker::v1::RequeueDeadLetterRequest& request,
                                         refbroker::v1::RequeueDeadLetterResponse& response) {
  auto q = QueueName::FromProto(request.queue(), "queue");
  if (!q.ok()) return q.status();
  if (request.consumer_group().empty()) {
    return absl::InvalidArgumentError("consumer_group: required");
  }
  if (absl::Status s = ctx_.policy.CanRequeue(who, q->owner); !s.ok()) return s;
  auto n = ctx_.engine.store().RequeueDeadLetters(q->ToString(), request.consumer_group(),
                                                  request.sequence(), ctx_.engine.clock().Now());
  if (!n.ok()) return n.status();
  response.set_requeued(*n);
  spdlog::info("dead letters requeued by={} queue={} group={} sequence={} count={}", who.id,
               q->ToString(), request.consumer_group(), request.sequence(), *n);
  ctx_.engine.Notify(q->ToString());
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListQueues(
    grpc::CallbackServerContext* context, const refbroker::v1::ListQueuesRequest* request,
    refbroker::v1::ListQueuesResponse* response) {
  return internal::ServeUnary(ctx_, context, "ListQueues",
                              [this, request, response](const auth::Principal& w) {
                                return DoListQueues(w, *request, *response);
                              });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListDeadLetters(
    grpc::CallbackServerContext* context, const refbroker::v1::ListDeadLettersRequest* request,
    refbroker::v1::ListDeadLettersResponse* response) {
  return internal::ServeUnary(ctx_, context, "ListDeadLetters",
                              [this, request, response](const auth::Principal& w) {
                                return DoListDeadLetters(w, *request, *response);
                              });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RequeueDeadLetter(
    grpc::CallbackServerContext* context, const refbroker::v1::RequeueDeadLetterRequest* request,
    refbroker::v1::RequeueDeadLetterResponse* response) {
  return internal::ServeUnary(ctx_, context, "RequeueDeadLetter",
                              [this, request, response](const auth::Principal& w) {
                                return DoRequeue(w, *request, *response);
                              });
}

}  // namespace refbroker::api

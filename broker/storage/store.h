#pragma once
// Store: the broker's durable state, in the broker's language (referrals, queues, consumer
// groups, leases, dead letters), not SQL. SQLite implements it today (sqlite_store.h);
// PostgreSQL (postgres_store.h) implements it too; one conformance suite runs against both
// (tests/broker/storage/).
//
// Contract for every implementation:
// - Thread-safe: any method may be called from any thread concurrently.
// - Every mutating method returns only after its effects are durable (fsync'd). Concurrent
//   mutations may share one commit (group commit), but a failed request never commits a part of
//   itself and never makes another request fail.
// - Errors: NotFound for a missing referral/message/group; InvalidArgument/AlreadyExists for a
//   request that contradicts stored state; ResourceExhausted when the disk is full (not latched:
//   the next write retries); Internal/Unavailable after an I/O or fsync failure, which is
//   latched: every later write returns the same error and Health() reports it.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "broker/common/clock.h"

namespace refbroker::storage {

// A message to append to a queue. `payload` is opaque to the store.
struct NewMessage {
  std::string queue;       // QueueName::ToString()
  int priority = 3;        // 1 = EMERGENCY (delivered first) .. 3 = ROUTINE
  std::string subject_id;  // what the message is about, e.g. a referral id (metadata, no PHI)
  std::string payload;
};

// A referral as the store keeps it. `body` is the serialized refbroker.v1.Referral (without
// its history, which is kept as events). The other fields are the indexed copy.
struct ReferralRecord {
  std::string id;
  std::string sender;             // institution code
  std::string receiver;           // institution code (current: re-routing changes it)
  std::string client_request_id;  // unique per sender
  std::string request_digest;     // SHA-256 of the submitted content, to detect reused ids
  int state = 0;                  // refbroker.v1.ReferralState
  int priority = 3;
  int direction = 1;  // refbroker.v1.Direction
  std::string journey_id;
  std::string alliance;  // the sender's alliance
  Micros submitted_at = 0;
  Micros updated_at = 0;
  Micros decision_due_at = 0;  // 0 = no decision pending
  int64_t version = 1;         // increases with every change
  std::string body;
};

// One entry of a referral's history.
struct ReferralEventRecord {
  std::string referral_id;
  std::string actor;              // institution code; "" for the broker itself
  std::string client_request_id;  // "" = none; otherwise unique per actor
  int action = 0;                 // refbroker.v1.ReferralAction
  Micros at = 0;
  std::string body;  // serialized refbroker.v1.ReferralEvent
};

struct SubmitResult {
  ReferralRecord referral;  // as stored (the original one when duplicate)
  bool duplicate = false;
};

// A change of one referral, applied only while its version is still `expected_version`,
// together with its history event and the messages that announce it — all or nothing.
struct ReferralChange {
  std::string referral_id;
  int64_t expected_version = 0;
  int state = 0;
  std::string receiver;
  Micros decision_due_at = 0;  // 0 = none
  Micros updated_at = 0;
  std::string body;
  ReferralEventRecord event;
  std::vector<NewMessage> messages;
};

struct ChangeResult {
  bool duplicate = false;     // event.client_request_id was used before: nothing was written
  ReferralEventRecord event;  // the stored event (the earlier one when duplicate)
};

// Which referrals to list. Empty/zero fields do not filter.
struct ReferralQuery {
  std::string party;        // only referrals this institution sends or receives
  std::string alliance;     // only referrals of this alliance
  std::string institution;  // sender or receiver (a user filter, within the above)
  int direction = 0;
  int state = 0;
  int priority = 0;
  Micros submitted_from = 0;  // inclusive
  Micros submitted_to = 0;    // exclusive; 0 = no bound
  std::string journey_id;
  size_t limit = 50;
  // Keyset paging, newest first: only referrals strictly before (after_submitted_at, after_id).
  Micros after_submitted_at = 0;
  std::string after_id;
};

// One message leased to a consumer group.
struct LeasedMessage {
  uint64_t sequence = 0;
  std::string queue;
  int priority = 3;
  std::string subject_id;
  std::string payload;
  uint32_t attempt = 0;  // 1 on first delivery
  Micros enqueued_at = 0;
  Micros lease_until = 0;
};

struct LeaseRequest {
  std::string queue;
  std::string group;
  size_t max_messages = 1;
  Micros now = 0;
  Micros lease_until = 0;     // when an unacked lease expires (ack deadline)
  uint32_t max_attempts = 5;  // an expired lease at this many attempts becomes a dead letter
  // When set, every message leased is recorded in the audit trail as a DELIVER by `reader`.
  std::string reader;
  std::string reader_alliance;
  std::string reader_peer;
};

struct LeaseResult {
  std::vector<LeasedMessage> messages;
  // Earliest time a message of this group not returned now becomes deliverable (an in-flight
  // lease expiring, a delayed retry); nullopt when nothing is pending.
  std::optional<Micros> next_visible_at;
};

struct AckResult {
  uint64_t sequence = 0;
  bool found = true;  // false when the group never had this sequence
  std::string subject_id;
  bool first_ack = false;  // false when it was already acked (acks are idempotent)
  // The change the ack's follow-up made to its referral in the same transaction, if any.
  std::optional<ReferralChange> follow_up;
};

// What the first ack of a message does to the referral it carries (its subject), in the ack's
// own transaction: given the referral as that transaction reads it, the change to write, or
// nullopt for none. A referral's DELIVERED transition so commits with the ack that causes it:
// one commit instead of two, and no crash between them. Runs inside the store's write
// transaction (perhaps on its writer thread): it must only compute.
using AckFollowUp = std::function<std::optional<ReferralChange>(const ReferralRecord&)>;

struct AckLeaseResult {
  std::vector<AckResult> acks;  // as AckBatch returns them
  LeaseResult leased;           // as Lease returns it
};

struct GroupStats {
  std::string group;
  // Waiting to be leased (a nacked one too, before its retry time).
  uint64_t ready = 0;
  // Leased, not acked; one whose lease ran out counts here until it is leased again.
  uint64_t in_flight = 0;
  uint64_t dead = 0;
  Micros oldest_enqueued_at = 0;  // of ready or in-flight messages; 0 when none
};

struct QueueStats {
  std::string queue;
  uint64_t retained = 0;    // messages in the store
  uint64_t unconsumed = 0;  // messages waiting for a queue that has no group yet
  Micros oldest_unconsumed_at = 0;
  std::vector<GroupStats> groups;
};

// Deadline breaches still open, by the institution that has to act: escalated referrals still
// waiting for a decision, by receiver, and escalated consults not yet reported, by target.
struct DeadlineBreaches {
  std::map<std::string, uint64_t> referrals;  // receiver -> count
  std::map<std::string, uint64_t> consults;   // target -> count
};

struct DeadlineBreachFilter {
  // The referral's or consult's own alliance (its sender's), "" = every alliance. Not whose
  // queue it waits on: a partner's referral into another alliance is counted under the
  // partner's, so a view of one alliance's queues filters by owner instead (the queue listing).
  std::string alliance;
  std::string owner;  // "" = every receiver or target
};

struct DeadLetterRecord {
  std::string queue;
  std::string group;
  uint64_t sequence = 0;
  std::string subject_id;
  uint32_t attempts = 0;
  std::string last_error;
  Micros enqueued_at = 0;
  Micros dead_at = 0;
};

struct DeadLetterFilter {
  std::string queue;  // empty = all
  std::string group;  // empty = all
  size_t limit = 100;
};

// A result record as the store keeps it; `body` is the serialized refbroker.v1.ResultRecord.
struct ResultRow {
  std::string id;
  std::string publisher;          // performing institution
  std::string client_request_id;  // unique per publisher
  std::string request_digest;
  std::string patient_key;  // PatientKey(): a hash, never the identifier itself
  std::string item_code;
  int kind = 0;
  Micros performed_at = 0;
  Micros received_at = 0;
  bool repeat_without_reason = false;
  std::string body;
};

// A recorded re-test reason; `body` is the serialized refbroker.v1.Retest.
struct RetestRow {
  std::string id;
  std::string institution;
  std::string client_request_id;  // unique per institution
  std::string patient_key;
  std::string item_code;
  int reason = 0;
  Micros recorded_at = 0;
  std::string used_by_result_id;  // "" while it has not explained a new result
  std::string body;
};

// What a new result is, decided inside its publishing transaction (Store::PublishResult).
struct PublishDecision {
  std::vector<NewMessage> messages;
  std::string use_retest_id;  // "" = none
};
using UnusedRetestLookup = std::function<absl::StatusOr<std::optional<RetestRow>>()>;
// What a publish's decision is told of an earlier result before its row is read: what the
// results index holds, its performing institution and when it was performed. False says the
// row cannot matter to the decision, and the store does not read it (each row is a random page
// of a large store, and most earlier results cannot be recognized).
using PriorFilter = std::function<bool(const std::string& publisher, Micros performed_at)>;
inline bool EveryPrior(const std::string&, Micros) { return true; }
// Hands the patient's stored results of the item performed before the new one to `visit`,
// newest first, until `visit` returns false: of the newest 20, those `filter` lets through. The
// rows are read as they are visited, so a decision made on the newest reads no more.
using PriorVisitor = std::function<bool(const ResultRow& prior)>;
using PriorScan = std::function<absl::Status(const PriorFilter& filter, const PriorVisitor& visit)>;
using PublishDecider = std::function<absl::StatusOr<PublishDecision>(
    const PriorScan& priors, const UnusedRetestLookup& unused_retest, ResultRow& row)>;

struct PublishOutcome {
  ResultRow row;  // as stored (the original when duplicate)
  bool duplicate = false;
};

struct RetestOutcome {
  RetestRow row;
  bool duplicate = false;
};

struct RetestCountRow {
  std::string institution;
  int reason = 0;  // 0 = results repeated without a reason
  uint64_t count = 0;
};

// A consult as the store keeps it. `body` is the serialized refbroker.v1.Consult without its
// reports, history and thread, which are kept as rows of their own.
struct ConsultRecord {
  std::string id;
  std::string requester;          // institution code
  std::string target;             // institution code
  std::string client_request_id;  // unique per requester
  std::string request_digest;
  int state = 0;  // refbroker.v1.ConsultState
  int priority = 3;
  int service = 0;       // refbroker.v1.ConsultServiceType
  std::string alliance;  // the requester's alliance
  Micros requested_at = 0;
  Micros updated_at = 0;
  Micros due_at = 0;  // acceptance or report deadline; 0 = none
  int64_t version = 1;
  std::string body;
};

// One entry of a consult's history.
struct ConsultEventRecord {
  std::string consult_id;
  std::string actor;              // institution code; "" for the broker itself
  std::string client_request_id;  // "" = none; otherwise unique per actor
  int action = 0;                 // refbroker.v1.ConsultAction
  Micros at = 0;
  std::string body;  // serialized refbroker.v1.ConsultEvent
};

// An issued report: never updated or deleted (the SQLite store refuses it with a trigger).
struct ConsultReportRow {
  std::string id;
  std::string consult_id;
  std::string sha256;
  std::string addendum_to;  // "" = an original report
  Micros issued_at = 0;
  std::string body;  // serialized refbroker.v1.ConsultReport
};

// One message of a consult's thread.
struct ConsultMessageRow {
  std::string id;
  std::string consult_id;
  uint64_t seq = 0;               // assigned by the store: 1, 2, ... per consult
  std::string author;             // institution code
  std::string client_request_id;  // unique per author
  Micros at = 0;
  std::string body;  // serialized refbroker.v1.ConsultMessage (filled by the announcer)
};

struct ConsultSubmitResult {
  ConsultRecord consult;  // as stored (the original when duplicate)
  bool duplicate = false;
};

// A change of one consult, applied only while its version is still `expected_version`, with
// its history event, an optional new report and the messages that announce it — all or nothing.
struct ConsultChange {
  std::string consult_id;
  int64_t expected_version = 0;
  int state = 0;
  Micros due_at = 0;  // 0 = none
  Micros updated_at = 0;
  std::string body;
  ConsultEventRecord event;
  std::optional<ConsultReportRow> report;
  std::vector<NewMessage> messages;
};

struct ConsultChangeResult {
  bool duplicate = false;    // the actor used event.client_request_id before: nothing written
  ConsultEventRecord event;  // the stored event (the earlier one when duplicate)
};

// The queue messages that announce a thread message, built once its seq is known.
// It also fills the row's body, which carries the seq.
using ThreadMessageAnnouncer = std::function<std::vector<NewMessage>(ConsultMessageRow&)>;

struct ThreadMessageOutcome {
  ConsultMessageRow row;  // as stored, with seq (the original when duplicate)
  bool duplicate = false;
};

// Which consults to list. Empty/zero fields do not filter.
struct ConsultQuery {
  std::string party;        // only consults this institution requests or is asked
  std::string alliance;     // only consults of this alliance
  std::string institution;  // requester or target (a user filter, within the above)
  int state = 0;
  int service = 0;
  int priority = 0;
  Micros requested_from = 0;  // inclusive
  Micros requested_to = 0;    // exclusive; 0 = no bound
  size_t limit = 50;
  // Keyset paging, newest first: only consults strictly before (after_requested_at, after_id).
  Micros after_requested_at = 0;
  std::string after_id;
};

// One entry of the audit trail: who (principal and alliance) did or read what (action) on which
// record (subject, and the patient's key when it concerns a patient), when, from where, and the
// answer. Entries are hash-chained: `hash` = AuditChainHash(prev_hash, entry) (audit_chain.h),
// so changing or removing one breaks every hash after it. The store assigns seq and the hashes.
struct AuditRow {
  uint64_t seq = 0;
  Micros at = 0;
  std::string actor;        // principal id (certificate CN); "broker" for the broker itself
  std::string alliance;     // the actor's alliance
  std::string action;       // RPC method, or DELIVER for a message leased to a consumer
  std::string subject;      // the record's id (referral, consult, result, ...); "" when none
  std::string patient_key;  // PatientKey() of the patient concerned; "" when none
  std::string peer;         // the caller's address as gRPC reports it
  std::string outcome;      // status code name of the answer ("OK", "PERMISSION_DENIED", ...)
  std::string prev_hash;
  std::string hash;
};

// The audit entry of one message leased to `req.reader` (the lease writes one per message).
inline AuditRow DeliverAuditRow(const LeaseRequest& req, const std::string& subject) {
  AuditRow row;
  row.at = req.now;
  row.actor = req.reader;
  row.alliance = req.reader_alliance;
  row.action = "DELIVER";
  row.subject = subject;
  row.peer = req.reader_peer;
  row.outcome = "OK";
  return row;
}

// Which audit entries to list (oldest first). Empty/zero fields do not filter.
struct AuditQuery {
  std::string alliance;
  std::string actor;
  std::string patient_key;  // entries with this key, and entries about the same subjects
  std::string subject;
  Micros from = 0;  // inclusive
  Micros to = 0;    // exclusive; 0 = no bound
  uint64_t after_seq = 0;
  size_t limit = 1000;
};

// Where the chain kept in the store starts: entries up to `upto_seq` were archived (written to
// `file` and then removed from the store); the next entry's prev_hash is `last_hash`.
struct AuditAnchor {
  uint64_t upto_seq = 0;
  std::string last_hash;
  std::string file;
  Micros archived_at = 0;
};

// Writes archived audit entries somewhere durable (a file, fsync'd) before the store drops them.
using AuditArchiveSink =
    std::function<absl::StatusOr<std::string>(const std::vector<AuditRow>& rows)>;

class Store {
 public:
  virtual ~Store() = default;

  // Stores `referral`, its first history event and `messages` in one transaction. When the
  // sender already used referral.client_request_id, nothing is written and the original is
  // returned with duplicate = true (or AlreadyExists when its request_digest differs).
  virtual absl::StatusOr<SubmitResult> SubmitReferral(const ReferralRecord& referral,
                                                      const ReferralEventRecord& event,
                                                      const std::vector<NewMessage>& messages) = 0;
  virtual absl::StatusOr<ReferralRecord> GetReferral(const std::string& id) = 0;
  // Applies `change` atomically. Duplicate (nothing written) when the actor already used the
  // event's client_request_id for the same referral and action; AlreadyExists when it used it
  // for something else; Aborted when the version moved on (re-read and retry); NotFound.
  virtual absl::StatusOr<ChangeResult> ChangeReferral(const ReferralChange& change) = 0;
  // The event an actor recorded under a client_request_id, if any.
  virtual absl::StatusOr<std::optional<ReferralEventRecord>> FindReferralEvent(
      const std::string& actor, const std::string& client_request_id) = 0;
  // A referral's history, oldest first.
  virtual absl::StatusOr<std::vector<ReferralEventRecord>> ListReferralEvents(
      const std::string& referral_id) = 0;
  // Referrals matching `query`, newest first (submitted_at, then id, descending).
  virtual absl::StatusOr<std::vector<ReferralRecord>> ListReferrals(const ReferralQuery& query) = 0;
  // Referrals whose decision deadline is ≤ now, earliest first.
  virtual absl::StatusOr<std::vector<ReferralRecord>> ListDueReferrals(Micros now,
                                                                       size_t limit) = 0;
  // SUBMITTED referrals whose REFERRALS message to their current receiver some group has
  // acked: a version whose DELIVERED transition followed the ack in a commit of its own left
  // these behind when it crashed in between. Returns (referral id, receiver) pairs; none, without
  // reading anything, once FinishDeliverySweep was called (an ack now commits the transition
  // with it, so a store this version wrote holds none, and the search reads every acked message).
  virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListAckedButUndelivered(
      size_t limit) = 0;
  // The start-up sweep found nothing more: later starts skip it (schema v10 marks a store
  // migrated from before it, and a new one, as still to be swept).
  virtual absl::Status FinishDeliverySweep() = 0;
  // The earliest pending decision deadline, if any.
  virtual absl::StatusOr<std::optional<Micros>> NextDecisionDue() = 0;

  // Creates the consumer group if it does not exist. A new group starts with every message
  // retained in the queue (so nothing sent before the first subscriber is missed).
  virtual absl::Status EnsureGroup(const std::string& queue, const std::string& group,
                                   Micros now) = 0;
  // Makes every retained message with sequence ≥ from_sequence deliverable again to the group.
  virtual absl::StatusOr<uint64_t> Replay(const std::string& queue, const std::string& group,
                                          uint64_t from_sequence, Micros now) = 0;
  // Leases up to max_messages deliverable messages, highest priority first, FIFO within a
  // priority. Expired leases that reached max_attempts become dead letters first.
  virtual absl::StatusOr<LeaseResult> Lease(const LeaseRequest& request) = 0;
  // Marks the messages done for the group, in one transaction (a subscriber's acks arrive
  // faster than one commit each). One result per sequence, in order; found = false for a
  // sequence the group never had (the others are still acked).
  // With `follow_up` (may be empty), each first ack of a message whose subject is a referral
  // also writes the change it returns (AckResult::follow_up).
  virtual absl::StatusOr<std::vector<AckResult>> AckBatch(const std::string& queue,
                                                          const std::string& group,
                                                          const std::vector<uint64_t>& sequences,
                                                          Micros now,
                                                          const AckFollowUp& follow_up) = 0;
  // AckBatch's acks (of lease.queue and lease.group, at lease.now) and then Lease(lease), in
  // one transaction: a subscriber's window refills in the commit that frees it, not in a
  // second commit after it. A failure writes neither.
  virtual absl::StatusOr<AckLeaseResult> AckThenLease(const std::vector<uint64_t>& sequences,
                                                      const AckFollowUp& follow_up,
                                                      const LeaseRequest& lease) = 0;
  // One ack. NotFound if the group never had the message.
  absl::StatusOr<AckResult> Ack(const std::string& queue, const std::string& group,
                                uint64_t sequence, Micros now);
  // Gives a leased message back: ready again at `retry_at`, or a dead letter when its attempts
  // reached max_attempts. A message already acked stays acked.
  virtual absl::Status Nack(const std::string& queue, const std::string& group, uint64_t sequence,
                            const std::string& reason, uint32_t max_attempts, Micros retry_at,
                            Micros now) = 0;
  // Releases leases without counting a failure (a subscriber went away): ready at `now`.
  virtual absl::Status Release(const std::string& queue, const std::string& group,
                               const std::vector<uint64_t>& sequences, Micros now) = 0;

  // Every queue with messages or groups, groups sorted by name. Asked by every metrics scrape,
  // status page and queue listing: both stores answer from counts their triggers keep (SQLite
  // schema v11, PostgreSQL v4).
  virtual absl::StatusOr<std::vector<QueueStats>> ListQueueStats() = 0;
  // Counted by the store, through the indexes of the open work only (escalated referrals,
  // open consults), so the answer is whole however many there are.
  virtual absl::StatusOr<DeadlineBreaches> CountDeadlineBreaches(
      const DeadlineBreachFilter& filter) = 0;
  virtual absl::StatusOr<std::vector<DeadLetterRecord>> ListDeadLetters(
      const DeadLetterFilter& filter) = 0;
  // Dead letters back to ready with attempts reset; sequence 0 = all of the queue and group.
  virtual absl::StatusOr<uint64_t> RequeueDeadLetters(const std::string& queue,
                                                      const std::string& group, uint64_t sequence,
                                                      Micros now) = 0;
  // Deletes messages that every group acked before `cutoff` (retention counts from the last
  // ack, not from the enqueue); returns how many.
  virtual absl::StatusOr<uint64_t> Prune(Micros cutoff) = 0;

  // Stores a result, deciding what it is in the same transaction (so a concurrent publish of
  // the same patient's item cannot slip between the look and the write): `decide` sees the
  // patient's earlier results of the item and may look up the publisher's oldest unused re-test
  // reason; it completes `row` and returns the messages to enqueue and the re-test to mark as
  // used by this result. Duplicate on a publisher's reused client_request_id (AlreadyExists if
  // the digest differs); `decide` is not called then.
  virtual absl::StatusOr<PublishOutcome> PublishResult(const ResultRow& row,
                                                       const PublishDecider& decide) = 0;
  virtual absl::StatusOr<ResultRow> GetResult(const std::string& id) = 0;
  // A patient's results, newest performed first; `item_codes` empty = every item.
  virtual absl::StatusOr<std::vector<ResultRow>> ListResults(
      const std::string& patient_key, const std::vector<std::string>& item_codes, size_t limit) = 0;
  // Duplicate on an institution's reused client_request_id.
  virtual absl::StatusOr<RetestOutcome> RecordRetest(const RetestRow& row) = 0;
  // The oldest re-test reason of `institution` for the patient's item not yet used.
  virtual absl::StatusOr<std::optional<RetestRow>> FindUnusedRetest(
      const std::string& institution, const std::string& patient_key,
      const std::string& item_code) = 0;
  // Re-tests by (institution, reason) and repeats without reason (reason 0) by publisher,
  // recorded in [from, to) (to = 0: no bound).
  virtual absl::StatusOr<std::vector<RetestCountRow>> CountRetests(Micros from, Micros to) = 0;

  // Stores `consult`, its REQUEST event and `messages` in one transaction; duplicate on the
  // requester's reused client_request_id (AlreadyExists when the digest differs).
  virtual absl::StatusOr<ConsultSubmitResult> SubmitConsult(
      const ConsultRecord& consult, const ConsultEventRecord& event,
      const std::vector<NewMessage>& messages) = 0;
  virtual absl::StatusOr<ConsultRecord> GetConsult(const std::string& id) = 0;
  // Applies `change` atomically, as ChangeReferral does (Duplicate, AlreadyExists, Aborted,
  // NotFound). A report whose id exists already is AlreadyExists: reports are never replaced.
  virtual absl::StatusOr<ConsultChangeResult> ChangeConsult(const ConsultChange& change) = 0;
  virtual absl::StatusOr<std::optional<ConsultEventRecord>> FindConsultEvent(
      const std::string& actor, const std::string& client_request_id) = 0;
  // A consult's history, oldest first; its reports in issue order.
  virtual absl::StatusOr<std::vector<ConsultEventRecord>> ListConsultEvents(
      const std::string& consult_id) = 0;
  virtual absl::StatusOr<std::vector<ConsultReportRow>> ListConsultReports(
      const std::string& consult_id) = 0;
  // Appends a thread message with the next seq of its consult and the messages `announce`
  // builds for it, in one transaction. Duplicate on the author's reused client_request_id.
  virtual absl::StatusOr<ThreadMessageOutcome> AppendConsultMessage(
      const ConsultMessageRow& row, const ThreadMessageAnnouncer& announce) = 0;
  // A consult's thread in order, from seq > after_seq.
  virtual absl::StatusOr<std::vector<ConsultMessageRow>> ListConsultMessages(
      const std::string& consult_id, uint64_t after_seq) = 0;
  // Consults matching `query`, newest first.
  virtual absl::StatusOr<std::vector<ConsultRecord>> ListConsults(const ConsultQuery& query) = 0;
  // Consults whose deadline is ≤ now, earliest first; and the earliest deadline, if any.
  virtual absl::StatusOr<std::vector<ConsultRecord>> ListDueConsults(Micros now, size_t limit) = 0;
  virtual absl::StatusOr<std::optional<Micros>> NextConsultDue() = 0;

  // Appends audit entries (seq and hashes assigned in order), durable on return. A thread
  // inside an AuditScope (audit_scope.h) also gets its pending entries written by the next
  // mutating call it makes, in that call's own transaction.
  virtual absl::Status AppendAudit(const std::vector<AuditRow>& rows) = 0;
  virtual absl::StatusOr<std::vector<AuditRow>> ListAudit(const AuditQuery& query) = 0;
  // The latest archive mark; seq 0 and an empty hash when nothing was ever archived.
  virtual absl::StatusOr<AuditAnchor> GetAuditAnchor() = 0;
  // Moves up to `limit` of the oldest entries recorded before `cutoff` out of the store: `sink`
  // writes them durably and names where, then they are removed and the anchor advances, in one
  // transaction. Nothing else can remove an audit entry. Returns how many were archived.
  virtual absl::StatusOr<uint64_t> ArchiveAudit(Micros cutoff, Micros now, size_t limit,
                                                const AuditArchiveSink& sink) = 0;
  // Deletes result records received before `cutoff` (and re-test reasons recorded before it).
  virtual absl::StatusOr<uint64_t> PruneResults(Micros cutoff) = 0;

  // OK, or the latched background error (SQLite), or why the database cannot be reached.
  virtual absl::Status Health() = 0;

  // Group commits, for the metrics: called after each commit with the number of write requests
  // it carried and the seconds it took. Set before writes.
  using CommitObserver = std::function<void(size_t batch, double seconds)>;
  virtual void SetCommitObserver(CommitObserver observer) = 0;
  virtual uint64_t commits() const = 0;  // transactions committed
  virtual uint64_t writes() const = 0;   // write requests they carried

  // Messages enqueued by another process on the same database (several brokers sharing one):
  // `listener(queue)` after their commit, or listener("") when anything may have changed (the
  // store could not listen for a while). A store only one process uses never calls it. The
  // listener is not called any more once SetEnqueueListener(nullptr) returns.
  using EnqueueListener = std::function<void(const std::string& queue)>;
  virtual void SetEnqueueListener(EnqueueListener listener) { (void)listener; }
};

inline absl::StatusOr<AckResult> Store::Ack(const std::string& queue, const std::string& group,
                                            uint64_t sequence, Micros now) {
  auto results = AckBatch(queue, group, {sequence}, now, nullptr);
  if (!results.ok()) return results.status();
  if (results->size() != 1 || !results->front().found) {
    return absl::NotFoundError(
        absl::StrCat("sequence ", sequence, " is not in group '", group, "' of ", queue));
  }
  return std::move(results->front());
}

}  // namespace refbroker::storage

#include "broker/storage/internal/list_query.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace refbroker::storage::internal {
namespace {

// The states the partial indexes of schema v6 hold (refbroker.v1 ReferralState, ConsultState).
constexpr int kSubmitted = 1, kDelivered = 2, kEscalated = 8;
constexpr int kRequested = 1, kAccepted = 2, kScheduled = 4;

// A state filter, written into the statement when it is a state the enums define (so SQLite
// sees a partial index's condition; a handful of shapes), bound as `param` otherwise (an
// unknown number must not make a new cached statement per value).
std::string StateIs(int state, const char* param) {
  if (state > 0 && state <= 32) return absl::StrCat("state=", state);
  return absl::StrCat("state=", param);
}

}  // namespace

ListSql::ListSql(std::string table, std::string columns, std::string time_column,
                 SqlDialect dialect)
    : table_(std::move(table)),
      columns_(std::move(columns)),
      time_(std::move(time_column)),
      dialect_(dialect) {}

void ListSql::Where(std::string condition) { where_.push_back(std::move(condition)); }

void ListSql::Either(std::string a, std::string b, std::string param) {
  either_a_ = std::move(a);
  either_b_ = std::move(b);
  either_param_ = std::move(param);
}

void ListSql::Through(std::string index) { index_ = std::move(index); }

std::string ListSql::Branch(const std::string& extra, const std::string& limit_param) const {
  std::vector<std::string> conditions = where_;
  if (!extra.empty()) conditions.insert(conditions.begin(), extra);
  std::string out = absl::StrCat("SELECT ", columns_, " FROM ", table_);
  if (!index_.empty() && dialect_ == SqlDialect::kSqlite) {
    absl::StrAppend(&out, " INDEXED BY ", index_);
  }
  if (!conditions.empty()) absl::StrAppend(&out, " WHERE ", absl::StrJoin(conditions, " AND "));
  absl::StrAppend(&out, " ORDER BY ", time_, " DESC, id DESC LIMIT ", limit_param);
  return out;
}

std::string ListSql::Build(const std::string& limit_param) const {
  std::string out;
  if (either_param_.empty()) {
    out = Branch("", limit_param);
  } else {
    // A row whose two columns both name the party belongs to the first branch only.
    const std::string& p = either_param_;
    out = absl::StrCat(
        "SELECT * FROM (", Branch(absl::StrCat(either_a_, "=", p), limit_param),
        ") AS first_column UNION ALL SELECT * FROM (",
        Branch(absl::StrCat(either_b_, "=", p, " AND ", either_a_, "<>", p), limit_param),
        ") AS second_column ORDER BY ", time_, " DESC, id DESC LIMIT ", limit_param);
  }
  // The statements hold no literal text, so every '?' is a parameter.
  if (dialect_ == SqlDialect::kPostgres) absl::StrReplaceAll({{"?", "$"}}, &out);
  return out;
}

// Parameters: ?1 party, ?2 alliance, ?3 institution, ?4 direction, ?5 state, ?6 priority,
// ?7 submitted from, ?8 submitted to, ?9 journey, ?10/?11 keyset, ?12 limit.
std::string ReferralListSql(const ReferralQuery& q, const char* columns, SqlDialect dialect) {
  ListSql sql("referrals", columns, "submitted_at", dialect);
  // A journey has two or three legs, and the referrals still waiting for a decision are the
  // open work (the operators' late views ask for them by state): those indexes are the
  // selective ones, whatever else is asked.
  const bool journey = !q.journey_id.empty();
  const bool undecided = q.state == kSubmitted || q.state == kDelivered || q.state == kEscalated;
  const bool narrow = journey || undecided;
  if (journey) {
    sql.Through("referrals_journey");
    sql.Where("journey_id=?9");
  } else if (q.state == kEscalated) {
    sql.Through("referrals_escalated");  // v10: few, and counted by every queue listing
  } else if (undecided) {
    sql.Through("referrals_undecided");
    sql.Where("state IN (1, 2, 8)");
  }
  // The party (the caller's own referrals) leads when there is one; a user's institution
  // filter within it, or alone (an operator's), is the other column pair.
  std::string lead = !q.party.empty() ? "?1" : (!q.institution.empty() ? "?3" : "");
  if (!lead.empty() && !narrow) {
    sql.Either("sender", "receiver", lead);
  } else if (!lead.empty()) {
    sql.Where(absl::StrCat("(sender=", lead, " OR receiver=", lead, ")"));
  }
  if (!q.party.empty() && !q.institution.empty()) sql.Where("(sender=?3 OR receiver=?3)");
  if (!q.alliance.empty()) sql.Where("alliance=?2");
  if (q.direction != 0) sql.Where("direction=?4");
  if (q.state != 0) sql.Where(StateIs(q.state, "?5"));
  if (q.priority != 0) sql.Where("priority=?6");
  if (q.submitted_from != 0) sql.Where("submitted_at>=?7");
  if (q.submitted_to != 0) sql.Where("submitted_at<?8");
  if (q.after_submitted_at != 0) {
    sql.Where("(submitted_at<?10 OR (submitted_at=?10 AND id<?11))");
  }
  return sql.Build("?12");
}

// Parameters: ?1 party, ?2 alliance, ?3 institution, ?4 state, ?5 service, ?6 priority,
// ?7 requested from, ?8 requested to, ?9/?10 keyset, ?11 limit.
std::string ConsultListSql(const ConsultQuery& q, const char* columns, SqlDialect dialect) {
  ListSql sql("consults", columns, "requested_at", dialect);
  std::string lead = !q.party.empty() ? "?1" : (!q.institution.empty() ? "?3" : "");
  const bool open = q.state == kRequested || q.state == kAccepted || q.state == kScheduled;
  if (open) {
    sql.Through("consults_open");  // the consults still open: few, and what late views ask
    sql.Where("state IN (1, 2, 4)");
    if (!lead.empty()) sql.Where(absl::StrCat("(requester=", lead, " OR target=", lead, ")"));
  } else if (!lead.empty()) {
    sql.Either("requester", "target", lead);
  }
  if (!q.party.empty() && !q.institution.empty()) sql.Where("(requester=?3 OR target=?3)");
  if (!q.alliance.empty()) sql.Where("alliance=?2");
  if (q.state != 0) sql.Where(StateIs(q.state, "?4"));
  if (q.service != 0) sql.Where("service=?5");
  if (q.priority != 0) sql.Where("priority=?6");
  if (q.requested_from != 0) sql.Where("requested_at>=?7");
  if (q.requested_to != 0) sql.Where("requested_at<?8");
  if (q.after_requested_at != 0) {
    sql.Where("(requested_at<?9 OR (requested_at=?9 AND id<?10))");
  }
  return sql.Build("?11");
}

// Parameters: ?1 after sequence, ?2 alliance, ?3 actor, ?4 subject, ?5 from, ?6 to, ?7 patient,
// ?8 limit, ?9 the patient's number (internal/patient_no.h; the index is by it, and the full key
// on the row tells apart two patients whose numbers collide).
std::string AuditListSql(const AuditQuery& q, const char* columns) {
  std::vector<std::string> where = {"seq>?1"};
  if (!q.alliance.empty()) where.push_back("alliance=?2");
  if (!q.actor.empty()) where.push_back("actor=?3");
  if (!q.subject.empty()) where.push_back("subject=?4 AND subject<>''");
  if (q.from != 0) where.push_back("at>=?5");
  if (q.to != 0) where.push_back("at<?6");
  if (!q.patient_key.empty()) {
    // The patient's entries, and every entry about a subject one of them names (a delivery of
    // the patient's referral names the referral, not the patient).
    where.push_back(
        "((patient_no=?9 AND patient_key=?7 AND patient_key<>'') OR (subject<>'' AND subject IN "
        "(SELECT subject FROM audit_log WHERE patient_no=?9 AND patient_key=?7 AND "
        "patient_key<>'' AND subject<>'')))");
  }
  return absl::StrCat("SELECT ", columns, " FROM audit_log WHERE ", absl::StrJoin(where, " AND "),
                      " ORDER BY seq LIMIT ?8");
}

}  // namespace refbroker::storage::internal

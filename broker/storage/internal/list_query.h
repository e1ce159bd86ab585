#pragma once
// The statements of the newest-first listings (referrals, consults), built from the filters a
// query uses. One statement with every filter optional ("?1='' OR sender=?1 ...") is planned
// once for all values, and SQLite planned it as a scan of the whole table and a sort: every
// continuation of a journey (a DOWN referral looks for an earlier one) read every referral the
// store held (soak at 100 referrals/s: 24-58 ms a call after one minute, and growing). Built
// per shape, each statement is planned with the index its filters name.
//
// PostgreSQL had the same one statement, and even planned with the values it found no better
// than a bitmap of both columns of the party (sender OR receiver), every one of the party's
// rows read and sorted for the newest 50 (a clinic with 71,000 referrals: 72,000 buffers,
// 0.6 s). The same shapes serve it: the party's two columns as two index-ordered branches,
// each stopping at the limit.

#include <string>
#include <vector>

#include "broker/storage/store.h"

namespace refbroker::storage::internal {

// SQLite numbers parameters ?N and takes an INDEXED BY; PostgreSQL numbers them $N and plans
// alone (its partial indexes are found from the same literal state conditions).
enum class SqlDialect { kSqlite, kPostgres };

// A listing, newest first by `time_column` then `id`, of `table`. Parameters are numbered
// (?N) by the caller, who binds every number up to the one of the limit (bound but unused
// numbers are allowed in SQLite).
class ListSql {
 public:
  ListSql(std::string table, std::string columns, std::string time_column,
          SqlDialect dialect = SqlDialect::kSqlite);

  // A condition every row must meet.
  void Where(std::string condition);
  // Rows whose column `a` or column `b` is `param`: read as two index-ordered branches (one
  // per column) merged, each stopping at the limit, instead of one search with a sort.
  void Either(std::string a, std::string b, std::string param);
  // Reads through this index (when a filter is known to be the selective one; SQLite only).
  void Through(std::string index);

  std::string Build(const std::string& limit_param) const;

 private:
  std::string Branch(const std::string& extra, const std::string& limit_param) const;

  std::string table_, columns_, time_, index_;
  SqlDialect dialect_;
  std::vector<std::string> where_;
  std::string either_a_, either_b_, either_param_;
};

// The statements of ListReferrals and ListConsults for `q`; parameters as those functions bind
// them (the same numbers in both stores).
std::string ReferralListSql(const ReferralQuery& q, const char* columns,
                            SqlDialect dialect = SqlDialect::kSqlite);
std::string ConsultListSql(const ConsultQuery& q, const char* columns,
                           SqlDialect dialect = SqlDialect::kSqlite);
// SqliteStore::ListAudit's statement, oldest first (parameters as it binds them). A patient's
// entries are searched in the patient index and, for the subjects they name, the subject index
// (both partial indexes: the statement repeats their conditions, or SQLite cannot use them).
std::string AuditListSql(const AuditQuery& q, const char* columns);

}  // namespace refbroker::storage::internal

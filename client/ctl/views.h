#pragma once
// refctl's screens as functions of the broker's answers, so that what an operator sees can be
// checked against golden files (tests/client/golden/) without a broker.

#include <cstdint>
#include <ostream>
#include <string>

#include "refbroker/v1/admin.pb.h"
#include "refbroker/v1/referral.pb.h"
#include "refbroker/v1/report.pb.h"

namespace refctl {

// "2026-11-22 20:07:01 +08:00" (or "... UTC").
std::string FormatTime(int64_t unix_seconds, bool utc);
// "referrals", "referral-updates", ...
std::string KindName(refbroker::v1::QueueKind kind);
// Age of the oldest waiting message ("45s", "3m05s", "2h10m"); "-" when nothing waits.
std::string Age(int64_t seconds, uint64_t depth);

// `refctl queues`: up-referral queues, down-referral queues, then the others.
void PrintQueues(const refbroker::v1::ListQueuesResponse& queues, std::ostream& out);
// `refctl referrals`.
void PrintReferralList(const refbroker::v1::ListReferralsResponse& list, bool utc,
                       std::ostream& out);

// `refctl report`: the table form, the CSV form (one row per institution and one for the
// alliance) and a self-contained HTML page with SVG charts (no script, no network).
void PrintReport(const refbroker::v1::AllianceReport& report, bool utc, std::ostream& out);
void PrintReportCsv(const refbroker::v1::AllianceReport& report, std::ostream& out);
void WriteReportHtml(const refbroker::v1::AllianceReport& report, bool utc, std::ostream& out);

}  // namespace refctl

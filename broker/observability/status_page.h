#pragma once
// The status page's HTML: the queue table (up-referral queues, down-referral queues, others)
// and the alliance report's headline figures for today, for one operator or auditor. Static
// HTML (no script), refreshed by the browser every 10 seconds; elements carry ids so that the
// browser test can read them.

#include <string>

#include "broker/common/clock.h"
#include "refbroker/v1/admin.pb.h"
#include "refbroker/v1/report.pb.h"

namespace refbroker::observability {

std::string RenderStatusPage(const refbroker::v1::ListQueuesResponse& queues,
                             const refbroker::v1::AllianceReport& today, const std::string& viewer,
                             Micros now);

}  // namespace refbroker::observability

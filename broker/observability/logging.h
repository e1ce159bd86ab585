#pragma once
// Process-wide logging set-up (spdlog). Log lines are key=value text or one JSON object per
// line. Policy: no patient identity (names, identifiers, birth dates, clinical text) is ever
// logged; log broker ids, institution codes, queues and priorities only.

#include <string>

#include "absl/status/status.h"

namespace refbroker::observability {

absl::Status SetUpLogging(const std::string& level, const std::string& format);

}  // namespace refbroker::observability

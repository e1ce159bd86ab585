#pragma once
// Validation of consult requests (consult.proto). Every error is INVALID_ARGUMENT (or
// RESOURCE_EXHAUSTED for an oversize consult) whose message starts with the field path, e.g.
// "consult.target.service: required". Messages never echo patient data. Pure, thread-safe.

#include <cstddef>

#include "absl/status/status.h"
#include "broker/common/clock.h"
#include "refbroker/v1/consult.pb.h"

namespace refbroker::domain {

absl::Status ValidateConsultRequest(const refbroker::v1::Consult& consult, Micros now,
                                    size_t max_bytes);
absl::Status ValidateConsultTransition(const refbroker::v1::TransitionConsultRequest& request,
                                       Micros now);
absl::Status ValidateReportRequest(const refbroker::v1::IssueReportRequest& request);
absl::Status ValidateThreadMessage(const refbroker::v1::ConsultMessage& message);
absl::Status ValidateConversion(const refbroker::v1::ConvertToReferralRequest& request);

// True for the services whose report is a reading of a study (ECG, imaging, pathology).
bool IsReadingService(refbroker::v1::ConsultServiceType service);

}  // namespace refbroker::domain

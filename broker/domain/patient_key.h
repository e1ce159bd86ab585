#pragma once
// PatientKey: how the broker indexes a patient's results without storing the identifier in the
// index: the SHA-256 of the (type, value) of a resident ID, or of (type, issuer, value) for
// identifiers that are only unique per issuer.

#include <string>

#include "refbroker/v1/common.pb.h"

namespace refbroker::domain {

std::string PatientKey(const refbroker::v1::PatientIdentifier& id);
// The key of a patient's first resident ID, else of its first identifier; "" when it has none.
std::string PatientKey(const refbroker::v1::Patient& patient);

}  // namespace refbroker::domain

#include "broker/domain/patient_key.h"

#include "absl/strings/str_cat.h"
#include "broker/common/ids.h"

namespace refbroker::domain {

std::string PatientKey(const refbroker::v1::PatientIdentifier& id) {
  bool national = id.type() == refbroker::v1::RESIDENT_ID || id.type() == refbroker::v1::PASSPORT;
  return "pk-" + Sha256Hex(absl::StrCat(static_cast<int>(id.type()), "|",
                                        national ? std::string() : id.issuer(), "|", id.value()));
}

std::string PatientKey(const refbroker::v1::Patient& patient) {
  for (const auto& id : patient.identifiers()) {
    if (id.type() == refbroker::v1::RESIDENT_ID) return PatientKey(id);
  }
  return patient.identifiers().empty() ? std::string() : PatientKey(patient.identifiers(0));
}

}  // namespace refbroker::domain

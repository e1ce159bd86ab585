#pragma once
// SyntheticReferrals: made-up but valid up-referrals and consults for the simulator, tests and
// benchmarks: resident IDs with real GB 11643 checksums (Pingyu division code 411723), plausible
// ICD-10 diagnoses, consent. No real person's data. Not thread-safe: one generator per thread.

#include <cstdint>
#include <random>
#include <string>

#include "refbroker/v1/consult.pb.h"
#include "refbroker/v1/referral.pb.h"

namespace refsim {

class SyntheticReferrals {
 public:
  explicit SyntheticReferrals(uint64_t seed) : rng_(seed) {}

  // An UP referral from `clinic_code`; `to` empty = the alliance default receiver.
  refbroker::v1::Referral Make(const std::string& clinic_code, const std::string& to,
                               refbroker::v1::Priority priority,
                               const std::string& client_request_id);
  // A consult from `clinic_code` to `target` for `service` (`specialty` for SPECIALTY_OPINION),
  // with a made-up patient, question and consent.
  refbroker::v1::Consult MakeConsult(const std::string& clinic_code, const std::string& target,
                                     refbroker::v1::ConsultServiceType service,
                                     const std::string& specialty, refbroker::v1::Priority priority,
                                     const std::string& client_request_id);
  // EMERGENCY 5%, URGENT 20%, ROUTINE 75%.
  refbroker::v1::Priority RandomPriority();
  // A checksum-valid resident ID number of someone born between 1940 and 2020.
  std::string ResidentId();

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

}  // namespace refsim

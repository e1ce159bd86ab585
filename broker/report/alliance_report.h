#pragma once
// The alliance report (refctl report): per institution and for the alliance, referral volumes
// and the down/up ratio, acceptance times and decline reasons, loops closed, deadline breaches,
// consult and reading turnaround by service, mutual recognition, and the township–county
// partnerships ranked by activity.
//
// BuildAllianceReport is a pure function of the period's records (tested with known journeys);
// LoadAllianceReport reads them from the store. Definitions:
// - referrals and consults count when submitted/requested in [from, to);
// - acceptance time: the referral's submission to its ACCEPT event; percentiles by nearest rank;
// - a loop is closed when an up-referral has a COMPLETE event (an outcome sent back to the
//   sender) or a down-referral in the same journey;
// - a deadline breach is an ESCALATE event, counted for the institution that was due to act;
// - recognition: the verdicts stamped on results attached to the referrals and consults an
//   institution received; re-tests and repeats without reason recorded in the period.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/auth/registry.h"
#include "broker/storage/store.h"
#include "refbroker/v1/consult.pb.h"
#include "refbroker/v1/referral.pb.h"
#include "refbroker/v1/report.pb.h"

namespace refbroker::report {

struct ReferralFacts {
  storage::ReferralRecord record;
  refbroker::v1::Referral body;
  std::vector<refbroker::v1::ReferralEvent> events;
};

struct ConsultFacts {
  storage::ConsultRecord record;
  refbroker::v1::Consult body;
  std::vector<refbroker::v1::ConsultEvent> events;
};

struct ReportInput {
  std::string alliance;
  Micros from = 0;
  Micros to = 0;
  std::vector<ReferralFacts> referrals;
  std::vector<ConsultFacts> consults;
  std::vector<storage::RetestCountRow> retests;
};

refbroker::v1::AllianceReport BuildAllianceReport(const auth::Registry& registry,
                                                  const ReportInput& input);

absl::StatusOr<refbroker::v1::AllianceReport> LoadAllianceReport(storage::Store& store,
                                                                 const auth::Registry& registry,
                                                                 const std::string& alliance,
                                                                 Micros from, Micros to);

// Nearest-rank percentiles of `samples` (minutes).
refbroker::v1::Percentiles PercentilesOf(std::vector<double> samples);

}  // namespace refbroker::report

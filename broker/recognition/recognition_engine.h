#pragma once
// Mutual-recognition rules (国卫医发〔2022〕6号). A result's data is RECOGNIZABLE for a
// requesting institution when all hold, otherwise each failing rule gives its reason:
//   NOT_IN_CATALOGUE  the item is not in the catalogue (then no other rule is evaluated)
//   NOT_ACCREDITED    the performing institution had no passed EQA for the item covering the
//                     time the result was performed
//   OUT_OF_SCOPE      performer and requester are in different alliances and the item's scope
//                     (CITY: same first 4 division digits; PROVINCE: first 2; NATIONAL) does not
//                     reach
//   EXPIRED           more than valid_days whole days old (the last valid day still counts)
//   QUALITY_FLAG      the result carries a quality flag
// The doctor's conclusion is never recognized. Pure function, thread-safe.

#include <string>
#include <vector>

#include "broker/auth/registry.h"
#include "broker/common/clock.h"
#include "broker/recognition/catalogue.h"
#include "refbroker/v1/result.pb.h"

namespace refbroker::recognition {

// What the rules need to know of one stored result.
struct ResultFacts {
  std::string result_id;
  std::string item_code;
  std::string performing_institution;
  Micros performed_at = 0;
  bool quality_flagged = false;
};

refbroker::v1::RecognitionVerdict Recognize(const ResultFacts& result, const Catalogue& catalogue,
                                            const auth::Registry& registry,
                                            const std::string& requesting_institution, Micros now);

}  // namespace refbroker::recognition

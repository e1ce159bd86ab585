#include "broker/recognition/recognition_engine.h"

#include "google/protobuf/util/time_util.h"

namespace refbroker::recognition {
namespace {

namespace v1 = refbroker::v1;
constexpr Micros kDay = 86400LL * 1000000;

bool Accredited(const Catalogue& catalogue, const ResultFacts& r) {
  for (const Accreditation* a :
       catalogue.FindAccreditations(r.performing_institution, r.item_code)) {
    if (a->eqa_passed && a->valid_from <= r.performed_at && r.performed_at < a->valid_until) {
      return true;
    }
  }
  return false;
}

bool InScope(const auth::Registry& registry, const CatalogueItem& item,
             const std::string& performer, const std::string& requester) {
  const auth::Principal* p = registry.Find(performer);
  const auth::Principal* q = registry.Find(requester);
  if (p == nullptr || q == nullptr) return false;
  if (p->alliance == q->alliance) return true;
  const auth::Alliance* pa = registry.FindAlliance(p->alliance);
  const auth::Alliance* qa = registry.FindAlliance(q->alliance);
  if (pa == nullptr || qa == nullptr) return false;
  auto same_prefix = [&](size_t n) {
    return pa->division.size() >= n && qa->division.size() >= n &&
           pa->division.compare(0, n, qa->division, 0, n) == 0;
  };
  switch (item.scope) {
    case v1::NATIONAL:
      return true;
    case v1::PROVINCE:
      return same_prefix(2);
    case v1::CITY:
      return same_prefix(4);
    default:
      return false;
  }
}

}  // namespace

v1::RecognitionVerdict Recognize(const ResultFacts& r, const Catalogue& catalogue,
                                 const auth::Registry& registry,
                                 const std::string& requesting_institution, Micros now) {
  v1::RecognitionVerdict v;
  v.set_result_id(r.result_id);
  v.set_item_code(r.item_code);
  v.set_catalogue_version(catalogue.version());
  v.set_conclusion_recognized(false);
  v.set_performing_institution(r.performing_institution);
  *v.mutable_performed_at() =
      google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(r.performed_at);
  int64_t age_days = now > r.performed_at ? (now - r.performed_at) / kDay : 0;
  v.set_age_days(age_days);
  const CatalogueItem* item = catalogue.FindItem(r.item_code);
  if (item == nullptr) {
    v.add_reasons(v1::NOT_IN_CATALOGUE);
    return v;
  }
  v.set_scope(item->scope);
  if (!Accredited(catalogue, r)) v.add_reasons(v1::NOT_ACCREDITED);
  if (!InScope(registry, *item, r.performing_institution, requesting_institution)) {
    v.add_reasons(v1::OUT_OF_SCOPE);
  }
  if (age_days > item->valid_days) v.add_reasons(v1::EXPIRED);
  if (r.quality_flagged) v.add_reasons(v1::QUALITY_FLAG);
  v.set_remaining_days(std::max<int64_t>(0, item->valid_days - age_days));
  v.set_recognizable(v.reasons().empty());
  if (v.recognizable()) v.set_hr_mark(catalogue.Mark(item->scope));
  return v;
}

}  // namespace refbroker::recognition

// refctl: result and mutual-recognition commands: `results` (a patient's records),
// `recognize` (which can be reused, with the reasons why not), `retests` (recorded re-test
// reasons and repeats without reason, per institution).

#include <iostream>
#include <map>

#include "client/ctl/commands.h"
#include "client/ctl/table.h"
#include "client/refclient/result_client.h"

namespace refctl {
namespace {

namespace v1 = refbroker::v1;

std::string Reasons(const v1::RecognitionVerdict& v) {
  if (v.recognizable()) return v.hr_mark();
  std::string out;
  for (int r : v.reasons()) {
    if (!out.empty()) out += ", ";
    out += v1::NonRecognitionReason_Name(static_cast<v1::NonRecognitionReason>(r));
  }
  return out;
}

}  // namespace

absl::StatusOr<refbroker::v1::PatientIdentifier> Identifier(const PatientArgs& p) {
  v1::PatientIdentifier id;
  v1::PatientIdType type;
  std::string t = p.type;
  for (char& c : t) c = static_cast<char>(std::toupper(c));
  if (!v1::PatientIdType_Parse(t, &type) || type == v1::PATIENT_ID_TYPE_UNSPECIFIED) {
    return absl::InvalidArgumentError("--id-type: e.g. RESIDENT_ID, EHC, HOSPITAL_MRN");
  }
  if (p.value.empty()) return absl::InvalidArgumentError("--id: required");
  id.set_type(type);
  id.set_value(p.value);
  id.set_issuer(p.issuer);
  return id;
}

int Results(const Globals& g, const PatientArgs& p) {
  auto id = Identifier(p);
  if (!id.ok()) {
    std::cerr << "refctl: " << id.status().message() << "\n";
    return 2;
  }
  v1::ListResultsRequest req;
  *req.mutable_patient() = *id;
  auto conn = Connect(g);
  auto out = refclient::ResultClient(*conn).List(req);
  if (!out.ok()) return Fail(out.status());
  if (g.json) {
    PrintJson(*out);
    return 0;
  }
  Table t({"ID", "KIND", "ITEM", "PERFORMED", "BY", "FLAGS"});
  for (const auto& r : out->results()) {
    std::string flags = r.repeat_without_reason() ? "repeat without reason" : "";
    if (r.quality_flags_size() > 0) flags += (flags.empty() ? "" : ", ") + r.quality_flags(0);
    t.AddRow({r.id(), v1::ResultKind_Name(r.kind()), r.item_code(),
              FormatTime(r.performed_at().seconds(), g.utc), r.performing_institution(), flags});
  }
  t.Print(std::cout);
  std::cout << out->results_size() << " result(s) readable by you\n";
  return 0;
}

int Recognize(const Globals& g, const PatientArgs& p, const std::vector<std::string>& items) {
  auto id = Identifier(p);
  if (!id.ok()) {
    std::cerr << "refctl: " << id.status().message() << "\n";
    return 2;
  }
  v1::RecognizeRequest req;
  *req.mutable_patient() = *id;
  for (const auto& i : items) req.add_item_codes(i);
  auto conn = Connect(g);
  auto out = refclient::ResultClient(*conn).Recognize(req);
  if (!out.ok()) return Fail(out.status());
  if (g.json) {
    PrintJson(*out);
    return 0;
  }
  Table t({"RESULT", "ITEM", "PERFORMED BY", "AGE", "LEFT", "RECOGNIZABLE", "MARK / REASONS"});
  for (const auto& v : out->verdicts()) {
    t.AddRow({v.result_id(), v.item_code(), v.performing_institution(),
              std::to_string(v.age_days()) + "d",
              v.recognizable() ? std::to_string(v.remaining_days()) + "d" : "-",
              v.recognizable() ? "yes" : "no", Reasons(v)});
  }
  t.Print(std::cout);
  std::cout << "catalogue version " << out->catalogue_version()
            << "; only data and images are recognized, never the conclusion\n";
  return 0;
}

int Retests(const Globals& g) {
  auto conn = Connect(g);
  auto out = refclient::ResultClient(*conn).Summary({});
  if (!out.ok()) return Fail(out.status());
  if (g.json) {
    PrintJson(*out);
    return 0;
  }
  Table t({"INSTITUTION", "REASON", "COUNT"});
  for (const auto& c : out->counts()) {
    t.AddRow({c.institution(),
              c.reason() == v1::RETEST_REASON_UNSPECIFIED ? "repeat without reason"
                                                          : v1::RetestReason_Name(c.reason()),
              std::to_string(c.count())});
  }
  t.Print(std::cout);
  return 0;
}

}  // namespace refctl

// refctl: the alliance report (`report`) and the audit trail (`audit verify`, `audit search`).

#include <fstream>
#include <iostream>

#include "client/ctl/commands.h"
#include "client/ctl/table.h"
#include "client/refclient/admin_client.h"

namespace refctl {

namespace v1 = refbroker::v1;

int Report(const Globals& g, const std::string& from, const std::string& to, bool csv,
           const std::string& html_path) {
  v1::ReportRequest req;
  for (auto [text, flag, ts] : {std::tuple{&from, "--from", req.mutable_from()},
                                std::tuple{&to, "--to", req.mutable_to()}}) {
    if (auto s = ParseDay(*text, flag, ts); !s.ok()) {
      std::cerr << "refctl: " << s.message() << "\n";
      return 2;
    }
  }
  auto conn = Connect(g);
  auto r = refclient::AdminClient(*conn).AllianceReport(req);
  if (!r.ok()) return Fail(r.status());
  if (!html_path.empty()) {
    std::ofstream out(html_path);
    WriteReportHtml(*r, g.utc, out);
    out.close();
    if (!out) {
      std::cerr << "refctl: --html: cannot write " << html_path << "\n";
      return 1;
    }
    std::cout << "wrote " << html_path << "\n";
    return 0;
  }
  if (g.json) {
    PrintJson(*r);
  } else if (csv) {
    PrintReportCsv(*r, std::cout);
  } else {
    PrintReport(*r, g.utc, std::cout);
  }
  return 0;
}

int AuditVerify(const Globals& g) {
  auto conn = Connect(g);
  auto r = refclient::AdminClient(*conn).VerifyAudit();
  if (!r.ok()) return Fail(r.status());
  if (g.json) {
    PrintJson(*r);
    return r->ok() ? 0 : 3;
  }
  if (r->archived_upto_seq() > 0) {
    std::cout << "entries 1.." << r->archived_upto_seq() << " archived (last in "
              << r->archive_file() << ")\n";
  }
  if (r->ok()) {
    std::cout << "audit chain OK: " << r->checked() << " entries checked";
    if (r->checked() > 0) std::cout << " (" << r->first_seq() << ".." << r->last_seq() << ")";
    std::cout << ", head " << r->head_hash() << "\n";
    return 0;
  }
  std::cout << "audit chain BROKEN at entry " << r->first_broken_seq() << ": " << r->problem()
            << " (" << r->checked() << " entries before it are intact)\n";
  return 3;
}

int AuditSearch(const Globals& g, const PatientArgs& patient, const std::string& actor,
                const std::string& subject, uint32_t limit) {
  v1::SearchAuditRequest req;
  if (!patient.value.empty()) {
    auto id = Identifier(patient);
    if (!id.ok()) {
      std::cerr << "refctl: " << id.status().message() << "\n";
      return 2;
    }
    *req.mutable_patient() = *id;
  }
  if (patient.value.empty() && actor.empty() && subject.empty()) {
    std::cerr << "refctl: audit search: give --id, --actor or --subject\n";
    return 2;
  }
  req.set_actor(actor);
  req.set_subject(subject);
  req.set_limit(limit);
  auto conn = Connect(g);
  auto r = refclient::AdminClient(*conn).SearchAudit(req);
  if (!r.ok()) return Fail(r.status());
  if (g.json) {
    PrintJson(*r);
    return 0;
  }
  Table t({"SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "FROM", "OUTCOME"});
  for (const auto& e : r->entries()) {
    t.AddRow({std::to_string(e.seq()), FormatTime(e.at().seconds(), g.utc), e.actor(), e.action(),
              e.subject().empty() ? "-" : e.subject(), e.peer(), e.outcome()});
  }
  t.Print(std::cout);
  std::cout << r->entries_size() << " entr" << (r->entries_size() == 1 ? "y" : "ies") << "\n";
  return 0;
}

}  // namespace refctl

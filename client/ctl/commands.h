#pragma once
// refctl's commands. Each returns the process exit code (0 ok, 1 broker error, 2 usage).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/ctl/views.h"
#include "client/refclient/connection.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "refbroker/v1/common.pb.h"

namespace refctl {

struct Globals {
  std::vector<std::string> brokers;
  std::string certs_dir;
  std::string as = "operator";
  std::string ca, cert, key;
  bool json = false;
  bool utc = false;  // times in UTC instead of China Standard Time (UTC+8)
};

struct ReferralFilter {
  std::string institution, direction, state, priority, from, to, journey;
  uint32_t limit = 50;
};

struct ConsultFilter {
  std::string institution, state, service, priority, from, to;
  uint32_t limit = 50;
};

// A patient identifier given on the command line.
struct PatientArgs {
  std::string type = "RESIDENT_ID";
  std::string value;
  std::string issuer;
};

std::unique_ptr<refclient::Connection> Connect(const Globals& g);
// The identifier given with --id, --id-type and --issuer; errors name the flag.
absl::StatusOr<refbroker::v1::PatientIdentifier> Identifier(const PatientArgs& p);
int Fail(const absl::Status& s);
void PrintJson(const google::protobuf::Message& m);
// An enum value name from a command-line word: "ecg-reading" -> "ECG_READING".
std::string Upper(std::string s);
// "YYYY-MM-DD" as midnight China Standard Time; the error names `flag`.
absl::Status ParseDay(const std::string& text, const char* flag, google::protobuf::Timestamp* out);

int Queues(const Globals& g, const std::string& owner);
// The queue table redrawn every `interval_s` seconds; `count` > 0 stops after that many.
int Watch(const Globals& g, const std::string& owner, int interval_s, int count);
// The alliance report for [from, to) as a table, --json, --csv or an HTML file.
int Report(const Globals& g, const std::string& from, const std::string& to, bool csv,
           const std::string& html_path);
int AuditVerify(const Globals& g);
int AuditSearch(const Globals& g, const PatientArgs& patient, const std::string& actor,
                const std::string& subject, uint32_t limit);
int DlqList(const Globals& g, const std::string& queue, const std::string& group, uint32_t limit);
int DlqRequeue(const Globals& g, const std::string& queue, const std::string& group, uint64_t seq);
// Requeues the dead letters a file lists (requeue_list.h); `path` "-" reads stdin. Goes on past
// an entry the broker refuses, names it, and exits 1 if any was refused.
int DlqRequeueFrom(const Globals& g, const std::string& path);
int Health(const Globals& g);
int Referrals(const Globals& g, const ReferralFilter& filter);
int ReferralShow(const Globals& g, const std::string& id);
int Results(const Globals& g, const PatientArgs& patient);
int Recognize(const Globals& g, const PatientArgs& patient, const std::vector<std::string>& items);
int Retests(const Globals& g);
int Consults(const Globals& g, const ConsultFilter& filter);
int ConsultShow(const Globals& g, const std::string& id);
// Referrals and consults past their deadline, escalated, or due within `within_minutes`.
int Late(const Globals& g, int within_minutes);

}  // namespace refctl

// The authorization matrix: every RPC called as every kind of principal, each answer's status
// code checked against the table below. The records belong to 西洋店镇卫生院 (the clinic, "self"):
// a referral to the People's Hospital ("hospital"), an ECG consult to the ECG center ("center")
// and a lab result addressed to the hospital. A mutating call gets a fresh record of its own, so
// that the cells do not depend on each other. Run with REFBROKER_PRINT_MATRIX=1 to print the
// observed table.

#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "client/refclient/admin_client.h"
#include "client/refclient/consult_client.h"
#include "client/refclient/referral_stream.h"
#include "client/refclient/result_client.h"
#include "refbroker/v1/audit.pb.h"
#include "refbroker/v1/report.pb.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;
using absl::StatusCode;
using google::protobuf::util::TimeUtil;

enum Who {
  kSelf,           // the institution whose records these are
  kSameAlliance,   // another institution of the same alliance (a township)
  kOtherAlliance,  // an institution of another alliance
  kHospital,       // the county hospital the referral and the result are addressed to
  kCenter,         // the resource center the consult asks (ECG)
  kOperator,       // the alliance's operator
  kOtherOperator,  // another alliance's operator
  kAuditor,        // the alliance's auditor
  kUnknown,        // a certificate of the CA whose CN is in no registry
  kWhoCount
};
constexpr std::array<const char*, kWhoCount> kStems = {
    "xiyangdian-thc", "guhuai-thc",        "shangcai-thc", "people-hospital", "ecg-center",
    "operator",       "shangcai-operator", "auditor",      "stranger"};
constexpr std::array<const char*, kWhoCount> kNames = {
    "self",     "same-alliance",  "other-alliance", "hospital", "center",
    "operator", "other-operator", "auditor",        "unknown"};

constexpr auto OK = StatusCode::kOk;
constexpr auto DENIED = StatusCode::kPermissionDenied;
constexpr auto UNAUTH = StatusCode::kUnauthenticated;

class Matrix : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    std::string dir =
        std::filesystem::temp_directory_path() / ("authz-registry-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    registry_ = dir + "/registry.toml";
    WriteTwoAllianceRegistry(registry_);
    BrokerConfig config;
    config.registry_path = registry_;
    config.ack_deadline_ms = 30000;
    broker_ = new BrokerProcess(config);
    ASSERT_TRUE(broker_->Start().ok());
    for (int w = 0; w < kWhoCount; ++w)
      conns_[w] = ConnectAs(broker_->address(), kStems[w]).release();
    hospital_inbox_ = new CollectingSubscriber(*conns_[kHospital], kPeopleHospital, "his", 64);
    referral_ = FreshReferral("fixture");
    consult_ = FreshConsult("fixture", false);
    patient_ = MakeReferral(kXiyangdian, "fixture").patient();
    auto published = refclient::ResultClient(*conns_[kSelf]).Publish(Lab("fixture"));
    ASSERT_TRUE(published.ok()) << published.status();
    result_ = published->result().id();
  }
  static void TearDownTestSuite() {
    delete hospital_inbox_;
    for (auto* c : conns_) delete c;
    delete broker_;
    std::filesystem::remove_all(std::filesystem::path(registry_).parent_path());
  }

  // A referral of the clinic to the People's Hospital, delivered to the hospital's system.
  static std::string FreshReferral(const std::string& tag) {
    refclient::ReferralClient client(*conns_[kSelf]);
    auto out = client.Submit(MakeReferral(kXiyangdian, "ref-" + tag, v1::ROUTINE, kPeopleHospital));
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return "";
    EXPECT_TRUE(WaitForState(client, out->referral().id(), v1::DELIVERED));
    return out->referral().id();
  }
  // An ECG consult of the clinic, accepted by the ECG center when `accepted`.
  static std::string FreshConsult(const std::string& tag, bool accepted) {
    auto out =
        refclient::ConsultClient(*conns_[kSelf]).Request(MakeEcgConsult(kXiyangdian, "con-" + tag));
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return "";
    std::string id = out->consult().id();
    if (accepted) {
      v1::TransitionConsultRequest accept;
      accept.set_consult_id(id);
      accept.set_client_request_id("acc-" + tag);
      accept.mutable_doctor()->set_id("ECG-07");
      accept.mutable_doctor()->set_name("刘医生");
      accept.mutable_accept();
      EXPECT_TRUE(refclient::ConsultClient(*conns_[kCenter]).Transition(accept).ok());
    }
    return id;
  }
  static v1::ResultRecord Lab(const std::string& tag) {
    v1::ResultRecord r;
    r.set_client_request_id("lab-" + tag);
    r.set_kind(v1::LAB);
    *r.mutable_patient() = MakeReferral(kXiyangdian, "fixture").patient();
    r.set_performing_institution(kXiyangdian);
    r.set_addressed_to(kPeopleHospital);
    r.set_item_code("LAB-GLU");
    *r.mutable_performed_at() = TimeUtil::GetCurrentTime() - TimeUtil::HoursToDuration(2);
    r.mutable_reporting_doctor()->set_id("D-77");
    r.mutable_reporting_doctor()->set_name("孙医生");
    auto* v = r.add_lab_values();
    v->set_analyte("GLU");
    v->set_value("5.1");
    v->set_unit("mmol/L");
    v->set_reference_range("3.9-6.1");
    return r;
  }
  static v1::Practitioner Doctor() {
    v1::Practitioner d;
    d.set_id("D-01");
    d.set_name("王医生");
    return d;
  }

  static std::string registry_;
  static BrokerProcess* broker_;
  static std::array<refclient::Connection*, kWhoCount> conns_;
  static CollectingSubscriber* hospital_inbox_;
  static std::string referral_, consult_, result_;
  static v1::Patient patient_;
};
std::string Matrix::registry_;
BrokerProcess* Matrix::broker_ = nullptr;
std::array<refclient::Connection*, kWhoCount> Matrix::conns_{};
CollectingSubscriber* Matrix::hospital_inbox_ = nullptr;
std::string Matrix::referral_, Matrix::consult_, Matrix::result_;
v1::Patient Matrix::patient_;

// Opens a Subscribe stream and reports how the broker answered the open: OK when it delivers
// or stays open, the status otherwise.
absl::Status SubscribeAs(refclient::Connection& conn, const std::string& owner,
                         v1::QueueKind kind) {
  auto stub = v1::DeliveryService::NewStub(conn.channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  auto stream = stub->Subscribe(&ctx);
  v1::SubscribeRequest open;
  open.mutable_open()->mutable_queue()->set_owner(owner);
  open.mutable_open()->mutable_queue()->set_kind(kind);
  open.mutable_open()->set_consumer_group("matrix");
  open.mutable_open()->set_window(1);
  stream->Write(open);
  v1::Delivery d;
  if (stream->Read(&d)) {
    ctx.TryCancel();
    stream->Finish().ok();
    return absl::OkStatus();
  }
  grpc::Status s = stream->Finish();
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return absl::OkStatus();  // open
  return refclient::FromGrpc(s);
}

struct Row {
  const char* rpc;
  std::array<StatusCode, kWhoCount> expected;
  std::function<absl::Status(refclient::Connection&, int who)> call;
};

//  self, same-alliance, other-alliance, hospital, center, operator, other-operator, auditor,
//  unknown
std::vector<Row> Rows() {
  return {
      {"SubmitReferral",
       {OK, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         return refclient::ReferralClient(c)
             .Submit(MakeReferral(kXiyangdian, "submit-" + std::to_string(who), v1::ROUTINE,
                                  kPeopleHospital))
             .status();
       }},
      {"SubmitReferrals",  // the answer of the stream's one submission, or the stream's end
       {OK, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         absl::Status answer = absl::UnknownError("no answer");
         refclient::ReferralStream stream(
             c, 1, [&answer](uint64_t, absl::StatusOr<v1::SubmitReferralResponse> a) {
               answer = a.status();
             });
         stream
             .Send(MakeReferral(kXiyangdian, "stream-" + std::to_string(who), v1::ROUTINE,
                                kPeopleHospital))
             .IgnoreError();
         absl::Status end = stream.Close();
         return end.ok() ? answer : end;
       }},
      {"GetReferral",
       {OK, DENIED, DENIED, OK, DENIED, OK, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         return refclient::ReferralClient(c).Get(Matrix::referral_).status();
       }},
      {"TransitionReferral (accept)",
       {DENIED, DENIED, DENIED, OK, DENIED, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         auto accept = Act(Matrix::FreshReferral("accept-" + std::to_string(who)), "acc");
         accept.mutable_accept();
         return refclient::ReferralClient(c).Transition(accept).status();
       }},
      {"ListReferrals",  // OK lists only what the caller may read (the next test)
       {OK, OK, OK, OK, OK, OK, OK, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         v1::ListReferralsRequest req;
         req.set_institution(kXiyangdian);
         return refclient::ReferralClient(c).List(req).status();
       }},
      {"Subscribe",
       {OK, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         return SubscribeAs(c, kXiyangdian, v1::REFERRAL_UPDATES);
       }},
      {"ListQueues",
       {OK, DENIED, DENIED, DENIED, DENIED, OK, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         return refclient::AdminClient(c).ListQueues(kXiyangdian).status();
       }},
      {"ListDeadLetters",
       {OK, DENIED, DENIED, DENIED, DENIED, OK, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         v1::ListDeadLettersRequest req;
         req.mutable_queue()->set_owner(kXiyangdian);
         req.mutable_queue()->set_kind(v1::REFERRAL_UPDATES);
         return refclient::AdminClient(c).ListDeadLetters(req).status();
       }},
      {"RequeueDeadLetter",
       {OK, DENIED, DENIED, DENIED, DENIED, OK, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         v1::RequeueDeadLetterRequest req;
         req.mutable_queue()->set_owner(kXiyangdian);
         req.mutable_queue()->set_kind(v1::REFERRAL_UPDATES);
         req.set_consumer_group("matrix");
         return refclient::AdminClient(c).Requeue(req).status();
       }},
      {"PublishResult",
       {OK, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         return refclient::ResultClient(c)
             .Publish(Matrix::Lab("pub-" + std::to_string(who)))
             .status();
       }},
      {"GetResult",
       {OK, DENIED, DENIED, OK, DENIED, OK, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         return refclient::ResultClient(c).Get(Matrix::result_).status();
       }},
      {"RecognizeResults",
       {OK, OK, OK, OK, OK, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         v1::RecognizeRequest req;
         *req.mutable_patient() = Matrix::patient_.identifiers(0);
         req.add_item_codes("LAB-GLU");
         return refclient::ResultClient(c).Recognize(req).status();
       }},
      {"RecordRetest",
       {OK, OK, OK, OK, OK, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         v1::Retest r;
         r.set_client_request_id("retest-" + std::to_string(who));
         *r.mutable_patient() = Matrix::patient_.identifiers(0);
         r.set_item_code("LAB-GLU");
         r.set_reason(v1::RETEST_CONDITION_CHANGED);
         *r.mutable_doctor() = Matrix::Doctor();
         return refclient::ResultClient(c).RecordRetest(r).status();
       }},
      {"ListResults",
       {OK, OK, OK, OK, OK, OK, OK, OK, UNAUTH},
       [](refclient::Connection& c, int) {
         v1::ListResultsRequest req;
         *req.mutable_patient() = Matrix::patient_.identifiers(0);
         return refclient::ResultClient(c).List(req).status();
       }},
      {"RetestSummary",
       {OK, OK, OK, OK, OK, OK, OK, OK, UNAUTH},
       [](refclient::Connection& c, int) {
         return refclient::ResultClient(c).Summary(v1::RetestSummaryRequest()).status();
       }},
      {"RequestConsult",
       {OK, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         return refclient::ConsultClient(c)
             .Request(MakeEcgConsult(kXiyangdian, "request-" + std::to_string(who)))
             .status();
       }},
      {"GetConsult",
       {OK, DENIED, DENIED, DENIED, OK, OK, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         return refclient::ConsultClient(c).Get(Matrix::consult_).status();
       }},
      {"TransitionConsult (accept)",
       {DENIED, DENIED, DENIED, DENIED, OK, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         v1::TransitionConsultRequest req;
         req.set_consult_id(Matrix::FreshConsult("t-" + std::to_string(who), false));
         req.set_client_request_id("accept");
         *req.mutable_doctor() = Matrix::Doctor();
         req.mutable_accept();
         return refclient::ConsultClient(c).Transition(req).status();
       }},
      {"IssueReport",
       {DENIED, DENIED, DENIED, DENIED, OK, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         v1::IssueReportRequest req;
         req.set_consult_id(Matrix::FreshConsult("r-" + std::to_string(who), true));
         req.set_client_request_id("report");
         req.mutable_content()->set_findings("窦性心律");
         req.mutable_content()->set_opinion("正常心电图");
         *req.mutable_content()->mutable_consultant() = Matrix::Doctor();
         return refclient::ConsultClient(c).IssueReport(req).status();
       }},
      {"PostMessage",
       {OK, DENIED, DENIED, DENIED, OK, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         v1::ConsultMessage m;
         m.set_consult_id(Matrix::consult_);
         m.set_client_request_id("post-" + std::to_string(who));
         *m.mutable_author()->mutable_doctor() = Matrix::Doctor();
         m.set_text("请看附件");
         return refclient::ConsultClient(c).Post(m).status();
       }},
      {"ConvertToReferral",
       {OK, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int who) {
         v1::ConvertToReferralRequest req;
         req.set_consult_id(Matrix::FreshConsult("c-" + std::to_string(who), true));
         req.set_client_request_id("convert-" + std::to_string(who));
         *req.mutable_doctor() = Matrix::Doctor();
         req.set_reason("急性心肌梗死可能");
         auto* d = req.add_diagnoses();
         d->set_code("I21.9");
         d->set_name("急性心肌梗死");
         req.set_department("全科");
         req.set_to_institution(kPeopleHospital);
         return refclient::ConsultClient(c).Convert(req).status();
       }},
      {"ListConsults",
       {OK, OK, OK, OK, OK, OK, OK, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         return refclient::ConsultClient(c).List(v1::ListConsultsRequest()).status();
       }},
      {"Session (join)",
       {OK, DENIED, DENIED, DENIED, OK, DENIED, DENIED, DENIED, UNAUTH},
       [](refclient::Connection& c, int) {
         auto s = refclient::ConsultSession::Join(c, Matrix::consult_);
         return s.status();
       }},
      {"VerifyAudit",
       {DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, OK, UNAUTH},
       [](refclient::Connection& c, int) {
         return refclient::AdminClient(c).VerifyAudit().status();
       }},
      {"SearchAudit",
       {DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, DENIED, OK, UNAUTH},
       [](refclient::Connection& c, int) {
         v1::SearchAuditRequest req;
         req.set_subject(Matrix::referral_);
         return refclient::AdminClient(c).SearchAudit(req).status();
       }},
      {"GetAllianceReport",
       {DENIED, DENIED, DENIED, DENIED, DENIED, OK, OK, OK, UNAUTH},
       [](refclient::Connection& c, int) {
         v1::ReportRequest req;
         *req.mutable_from() = TimeUtil::GetCurrentTime() - TimeUtil::HoursToDuration(24);
         *req.mutable_to() = TimeUtil::GetCurrentTime() + TimeUtil::HoursToDuration(1);
         return refclient::AdminClient(c).AllianceReport(req).status();
       }},
  };
}

TEST_F(Matrix, EveryRpcAsEveryPrincipalGetsExactlyTheStatusInTheTable) {
  bool print = std::getenv("REFBROKER_PRINT_MATRIX") != nullptr;
  std::ostringstream observed;
  for (const Row& row : Rows()) {
    observed << "      {\"" << row.rpc << "\",\n       {";
    for (int who = 0; who < kWhoCount; ++who) {
      StatusCode got = row.call(*conns_[who], who).code();
      observed << (who ? ", " : "") << absl::StatusCodeToString(got);
      EXPECT_EQ(got, row.expected[who]) << row.rpc << " as " << kNames[who] << ": expected "
                                        << absl::StatusCodeToString(row.expected[who]) << ", got "
                                        << absl::StatusCodeToString(got);
    }
    observed << "}},\n";
  }
  if (print) std::printf("%s", observed.str().c_str());
}

// The table is complete: every method of every service of the API has a row (a new RPC
// cannot slip past the matrix).
TEST(MatrixTable, HasARowForEveryRpcOfEveryService) {
  std::set<std::string> rows;
  for (const Row& row : Rows())
    rows.insert(std::string(row.rpc).substr(0, std::string(row.rpc).find(' ')));
  const google::protobuf::FileDescriptor* files[] = {
      v1::Referral::descriptor()->file(),          v1::Consult::descriptor()->file(),
      v1::ResultRecord::descriptor()->file(),      v1::SubscribeOpen::descriptor()->file(),
      v1::ListQueuesRequest::descriptor()->file(), v1::AuditEntry::descriptor()->file(),
      v1::ReportRequest::descriptor()->file()};
  int methods = 0;
  for (const auto* file : files) {
    for (int s = 0; s < file->service_count(); ++s) {
      const auto* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        ++methods;
        EXPECT_EQ(rows.count(service->method(m)->name()), 1u)
            << service->full_name() << "." << service->method(m)->name()
            << " has no row in the authorization matrix";
      }
    }
  }
  EXPECT_EQ(methods, static_cast<int>(rows.size()));
}

// The lists answer OK to everyone; what they hold is the caller's own business only.
TEST_F(Matrix, ListsShowARecordOnlyToThoseWhoMayReadIt) {
  //                                     self  same  other  hosp  center  op    other-op
  const std::array<bool, 7> referral = {true, false, false, true, false, true, false};
  const std::array<bool, 7> result = {true, false, false, true, false, true, false};
  const std::array<bool, 7> consult = {true, false, false, false, true, true, false};
  for (int who = 0; who < kAuditor; ++who) {  // the auditor may not list them at all (above)
    auto& c = *conns_[who];
    v1::ListReferralsRequest rq;
    rq.set_page_size(500);
    auto referrals = refclient::ReferralClient(c).List(rq);
    ASSERT_TRUE(referrals.ok()) << kNames[who] << ": " << referrals.status();
    bool saw = false;
    for (const auto& r : referrals->referrals()) saw = saw || r.id() == referral_;
    EXPECT_EQ(saw, referral[who]) << "referral listed to " << kNames[who];

    v1::ListResultsRequest lq;
    *lq.mutable_patient() = patient_.identifiers(0);
    auto results = refclient::ResultClient(c).List(lq);
    ASSERT_TRUE(results.ok()) << kNames[who] << ": " << results.status();
    saw = false;
    for (const auto& r : results->results()) saw = saw || r.id() == result_;
    EXPECT_EQ(saw, result[who]) << "result listed to " << kNames[who];

    v1::ListConsultsRequest cq;
    cq.set_page_size(500);
    auto consults = refclient::ConsultClient(c).List(cq);
    ASSERT_TRUE(consults.ok()) << kNames[who] << ": " << consults.status();
    saw = false;
    for (const auto& x : consults->consults()) saw = saw || x.id() == consult_;
    EXPECT_EQ(saw, consult[who]) << "consult listed to " << kNames[who];
  }
}

}  // namespace
}  // namespace refbroker::testing

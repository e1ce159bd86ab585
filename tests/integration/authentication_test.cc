// Identity at the edge: mTLS is required, only the dev CA is trusted, only registered
// principals are served, and a principal acts only as itself.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class AuthenticationTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(broker_.Start().ok()) << broker_.log_path(); }

  absl::Status SubmitWith(std::shared_ptr<grpc::ChannelCredentials> creds) {
    auto channel = grpc::CreateChannel(broker_.address(), creds);
    auto stub = refbroker::v1::ReferralService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    refbroker::v1::SubmitReferralRequest req;
    *req.mutable_referral() = MakeReferral(kXiyangdian, "auth-1");
    refbroker::v1::SubmitReferralResponse resp;
    return refclient::FromGrpc(stub->SubmitReferral(&ctx, req, &resp));
  }

  BrokerProcess broker_;
};

TEST_F(AuthenticationTest, AConnectionWithoutClientCertificateGetsNoResponse) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = Read(CertsDir() + "/ca.crt");
  absl::Status s = SubmitWith(grpc::SslCredentials(o));
  // The TLS handshake fails: the call never reaches the broker's code.
  EXPECT_TRUE(absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) << s;
}

TEST_F(AuthenticationTest, ACertificateFromAnotherCaGetsNoResponse) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = Read(CertsDir() + "/ca.crt");
  o.pem_cert_chain = Read(CertPath("foreign-client"));  // CN is a registered clinic's code
  o.pem_private_key = Read(KeyPath("foreign-client"));
  absl::Status s = SubmitWith(grpc::SslCredentials(o));
  EXPECT_TRUE(absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) << s;
}

TEST_F(AuthenticationTest, PlaintextGetsNoResponse) {
  absl::Status s = SubmitWith(grpc::InsecureChannelCredentials());
  EXPECT_TRUE(absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) << s;
}

TEST_F(AuthenticationTest, AnUnregisteredPrincipalIsUnauthenticated) {
  auto stranger = ConnectAs(broker_.address(), "stranger");
  auto r = refclient::ReferralClient(*stranger).Submit(MakeReferral(kXiyangdian, "s-1"));
  EXPECT_TRUE(absl::IsUnauthenticated(r.status())) << r.status();
  CollectingSubscriber sub(*stranger, kPeopleHospital, "his", 1);
  sub.WaitFor(1, 2);
  sub.Stop();
  EXPECT_TRUE(absl::IsUnauthenticated(sub.result())) << sub.result();
}

// A client retrying with a certificate the CA signed for a CN the registry does not hold: every
// call is refused, and the refusals are audited up to a rate per peer (5/s, burst 20), so its
// retries do not become store writes.
TEST_F(AuthenticationTest, AnUnregisteredPrincipalRetryingIsAuditedUpToARate) {
  auto stranger = ConnectAs(broker_.address(), "stranger");
  refclient::RetryPolicy once;
  once.max_attempts = 1;
  auto start = std::chrono::steady_clock::now();
  constexpr int kCalls = 200;
  int refused = 0;
  for (int i = 0; i < kCalls; ++i) {
    auto r = refclient::ReferralClient(*stranger, once)
                 .Submit(MakeReferral(kXiyangdian, "s-" + std::to_string(i)));
    if (absl::IsUnauthenticated(r.status())) refused++;
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(refused, kCalls);
  int64_t audited = broker_.CountRows("audit_log WHERE actor = '(unknown)'");
  EXPECT_GE(audited, 1);
  EXPECT_LE(audited, 20 + static_cast<int64_t>(5 * (seconds + 1)))
      << kCalls << " refusals in " << seconds << " s";
}

TEST_F(AuthenticationTest, AClinicReadingAnotherInstitutionsQueueIsDenied) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  CollectingSubscriber sub(*clinic, kPeopleHospital, "his", 1);
  sub.WaitFor(1, 2);
  sub.Stop();
  EXPECT_TRUE(absl::IsPermissionDenied(sub.result())) << sub.result();
  EXPECT_NE(sub.result().message().find("queue"), absl::string_view::npos);
}

TEST_F(AuthenticationTest, AClinicSubmittingAsAnotherIsDenied) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  auto r = refclient::ReferralClient(*clinic).Submit(MakeReferral(kGuhuai, "as-other-1"));
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("referral.from.institution"), absl::string_view::npos);
}

TEST_F(AuthenticationTest, AHospitalCannotSendAnUpReferral) {
  auto hospital = ConnectAs(broker_.address(), "tcm-hospital");
  auto r = refclient::ReferralClient(*hospital).Submit(MakeReferral(kTcmHospital, "h-1"));
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
}

TEST_F(AuthenticationTest, AClinicSeesOnlyItsOwnQueuesAndCannotRequeueOthers) {
  std::string out;
  auto clinic_args = [](const std::string& rest) { return "--as xiyangdian-thc " + rest; };
  ASSERT_EQ(RunRefctl(broker_.address(), clinic_args("--json queues"), &out), 0) << out;
  EXPECT_NE(out.find(kXiyangdian), std::string::npos);
  EXPECT_EQ(out.find(kPeopleHospital), std::string::npos) << out;
  out.clear();
  EXPECT_NE(RunRefctl(broker_.address(),
                      clinic_args("dlq requeue --queue " + std::string(kPeopleHospital) +
                                  "/referrals --group his"),
                      &out),
            0);
  EXPECT_NE(out.find("PERMISSION_DENIED"), std::string::npos) << out;
}

}  // namespace
}  // namespace refbroker::testing

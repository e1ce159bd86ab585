// Transport: TLS 1.2 or newer only (the gRPC port and the status page), and a client
// certificate past its validity is refused at the handshake even though the CA signed it and
// its CN is registered.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

class Transport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    broker_ = new BrokerProcess();
    ASSERT_TRUE(broker_->Start().ok());
  }
  static void TearDownTestSuite() { delete broker_; }

  // Runs openssl s_client against `port` offering only `version`; true when the handshake
  // completed with that version. SECLEVEL=0 lets the client offer old versions, so that a
  // refusal is the server's.
  static bool Handshake(int port, const std::string& version) {
    std::string out;
    RunCommand("openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -" + version +
                   " -cipher DEFAULT@SECLEVEL=0 -alpn h2 -CAfile " + CertsDir() + "/ca.crt -cert " +
                   CertPath("operator") + " -key " + KeyPath("operator") + " </dev/null 2>&1",
               &out);
    return out.find("Cipher is (NONE)") == std::string::npos &&
           out.find("New, TLSv") != std::string::npos;
  }

  static BrokerProcess* broker_;
};
BrokerProcess* Transport::broker_ = nullptr;

TEST_F(Transport, OnlyTls12OrNewerOnTheApiAndTheStatusPage) {
  for (int port : {broker_->port(), broker_->status_port()}) {
    EXPECT_FALSE(Handshake(port, "tls1")) << port;
    EXPECT_FALSE(Handshake(port, "tls1_1")) << port;
    EXPECT_TRUE(Handshake(port, "tls1_2")) << port;
    EXPECT_TRUE(Handshake(port, "tls1_3")) << port;
  }
}

TEST_F(Transport, AnExpiredClientCertificateIsRefused) {
  // The dev CA signs a certificate for a registered clinic that expired in 2020.
  std::string dir = broker_->dir() + "/expired";
  std::filesystem::create_directories(dir + "/db");
  std::ofstream(dir + "/db/index.txt").close();
  std::ofstream(dir + "/db/serial") << "01\n";
  std::ofstream(dir + "/ca.cnf")
      << "[ca]\ndefault_ca = dev\n[dev]\ndir = " << dir << "\ndatabase = " << dir
      << "/db/index.txt\nserial = " << dir << "/db/serial\nnew_certs_dir = " << dir
      << "\ndefault_md = sha256\npolicy = any\n[any]\ncommonName = supplied\n"
      << "organizationName = optional\n[ext]\nbasicConstraints = CA:FALSE\n"
      << "keyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n";
  std::string out;
  ASSERT_EQ(RunCommand("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                       "-subj '/O=refbroker dev/CN=" +
                           std::string(kXiyangdian) + "' -keyout " + dir + "/x.key -out " + dir +
                           "/x.csr && openssl ca -batch -config " + dir + "/ca.cnf -cert " +
                           CertsDir() + "/ca.crt -keyfile " + CertsDir() + "/ca.key -in " + dir +
                           "/x.csr -out " + dir +
                           "/x.crt -startdate 20200101000000Z -enddate 20200201000000Z "
                           "-extensions ext",
                       &out),
            0)
      << out;
  refclient::ConnectionOptions o =
      refclient::CertDirOptions({broker_->address()}, CertsDir(), "xiyangdian-thc");
  o.cert_file = dir + "/x.crt";
  o.key_file = dir + "/x.key";
  auto conn = refclient::Connection::Create(o);
  ASSERT_TRUE(conn.ok()) << conn.status();
  refclient::RetryPolicy once;
  once.max_attempts = 1;
  once.per_call_timeout = std::chrono::milliseconds(3000);
  auto expired = refclient::ReferralClient(**conn, once).Submit(MakeReferral(kXiyangdian, "exp"));
  // The handshake fails, so the channel never becomes ready: the call ends unanswered.
  EXPECT_TRUE(absl::IsUnavailable(expired.status()) || absl::IsDeadlineExceeded(expired.status()))
      << expired.status();
  // The same clinic with its valid certificate is served, and the expired attempt stored
  // nothing: the same request id is new.
  auto valid = ConnectAs(broker_->address(), "xiyangdian-thc");
  auto served = refclient::ReferralClient(*valid).Submit(MakeReferral(kXiyangdian, "exp"));
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_FALSE(served->duplicate());
}

}  // namespace
}  // namespace refbroker::testing

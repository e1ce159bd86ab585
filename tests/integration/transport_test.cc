// Transport: TLS 1.2 or newer only (the gRPC port and the status page); a client certificate
// past its validity is refused at the handshake even though the CA signed it and its CN is
// registered; a certificate on the CRL ([tls] crl) is refused, and the broker's certificate and
// the CRL reload on SIGHUP without dropping the connections that are open; a stream whose own
// certificate the reloaded CRL lists is ended (nothing more delivered to it, nothing accepted).

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "client/refclient/consult_client.h"
#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;

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

// A PKI of the test's own, copied from the test PKI, so that the test can revoke certificates
// and replace the broker's without touching the one the other tests share.
class TlsReload : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = (std::filesystem::temp_directory_path() /
            ("refbroker-pki-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(pki_);
    std::filesystem::create_directories(pki_);
    for (const char* f :
         {"ca.crt", "ca.key", "broker.crt", "broker.key", "foreign-ca.crt", "foreign-ca.key"}) {
      std::filesystem::copy_file(CertsDir() + "/" + f, pki_ + "/" + f);
    }
  }
  void TearDown() override { std::filesystem::remove_all(pki_); }

  // certs/revoke-cert.sh on this PKI: revokes `stems` (none = an empty CRL).
  void Revoke(const std::string& stems) {
    for (const char* who : {"guhuai-thc", "auditor", "people-hospital"}) {
      std::string crt = pki_ + "/" + who + ".crt";
      if (!std::filesystem::exists(crt)) std::filesystem::copy_file(CertPath(who), crt);
    }
    std::string out;
    ASSERT_EQ(RunCommand(std::string(REFBROKER_SOURCE_DIR) + "/certs/revoke-cert.sh --dir " + pki_ +
                             " " + stems + " 2>&1",
                         &out),
              0)
        << out;
  }

  // Serial of the certificate the broker presents on a new handshake at `port`.
  static std::string ServedSerial(int port) {
    std::string out;
    RunCommand("openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -CAfile " +
                   CertsDir() + "/ca.crt -cert " + CertPath("operator") + " -key " +
                   KeyPath("operator") + " </dev/null 2>/dev/null | openssl x509 -noout -serial",
               &out);
    return out;
  }

  // The status page's HTTP code for `stem`'s certificate ("000" when the handshake fails).
  static std::string StatusPageCode(int port, const std::string& stem) {
    std::string out;
    RunCommand("curl -s -o /dev/null -w '%{http_code}' --cacert " + CertsDir() + "/ca.crt --cert " +
                   CertPath(stem) + " --key " + KeyPath(stem) +
                   " https://127.0.0.1:" + std::to_string(port) + "/",
               &out);
    return out;
  }

  // A broker on this PKI whose tls.crl is an empty CRL to start with (null if it did not start).
  std::unique_ptr<BrokerProcess> StartWithCrl() {
    Revoke("");
    BrokerConfig config;
    config.tls_dir = pki_;
    config.tls_crl = pki_ + "/crl.pem";
    auto broker = std::make_unique<BrokerProcess>(config);
    if (!broker->Start().ok()) return nullptr;
    return broker;
  }

  // Revokes `stems`, sends SIGHUP and waits until the broker logs that it loaded the new CRL.
  bool RevokeAndReload(const BrokerProcess& broker, const std::string& stems) {
    Revoke(stems);
    return !::testing::Test::HasFatalFailure() && ::kill(broker.pid(), SIGHUP) == 0 &&
           WaitForLog(broker, "tls reloaded", 20);
  }

  // Waits until the broker's log holds `text` (true) or `seconds` pass (false).
  static bool WaitForLog(const BrokerProcess& broker, const std::string& text, int seconds) {
    for (int i = 0; i < seconds * 10; ++i) {
      std::ifstream log(broker.log_path());
      std::stringstream all;
      all << log.rdbuf();
      if (all.str().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::string pki_;
};

TEST_F(TlsReload, ARevokedCertificateIsRefusedAndSighupReloadsWithoutDroppingConnections) {
  Revoke("");  // an empty CRL to start with
  BrokerConfig config;
  config.tls_dir = pki_;
  config.tls_crl = pki_ + "/crl.pem";
  BrokerProcess broker(config);
  ASSERT_TRUE(broker.Start().ok());

  // Open before the reload: Guhuai's connection, and the hospital's delivery stream (a raw
  // stream, which would end rather than reconnect if its connection dropped).
  auto guhuai = ConnectAs(broker.address(), "guhuai-thc");
  refclient::RetryPolicy once;
  once.max_attempts = 1;
  once.per_call_timeout = std::chrono::milliseconds(3000);
  ASSERT_TRUE(refclient::ReferralClient(*guhuai, once)
                  .Submit(MakeReferral(kGuhuai, "before", v1::ROUTINE, kPeopleHospital))
                  .ok());
  auto hospital = ConnectAs(broker.address(), "people-hospital");
  auto stub = v1::DeliveryService::NewStub(hospital->channel());
  grpc::ClientContext ctx;
  auto stream = stub->Subscribe(&ctx);
  v1::SubscribeRequest open;
  open.mutable_open()->mutable_queue()->set_owner(kPeopleHospital);
  open.mutable_open()->mutable_queue()->set_kind(v1::REFERRALS);
  open.mutable_open()->set_consumer_group("his");
  ASSERT_TRUE(stream->Write(open));
  v1::Delivery d;
  ASSERT_TRUE(stream->Read(&d));  // "before"
  v1::SubscribeRequest ack;
  ack.mutable_ack()->set_sequence(d.sequence());
  ASSERT_TRUE(stream->Write(ack));
  const std::string old_serial = ServedSerial(broker.port());
  ASSERT_FALSE(old_serial.empty());
  EXPECT_EQ(StatusPageCode(broker.status_port(), "auditor"), "200");

  // The operator revokes Guhuai's and the auditor's certificates and renews the broker's own.
  Revoke("guhuai-thc auditor");
  std::string out;
  ASSERT_EQ(RunCommand("cd " + pki_ +
                           " && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
                           "extendedKeyUsage=serverAuth\\n' > ext && "
                           "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                           "-nodes -subj '/O=refbroker dev/CN=localhost' -keyout new.key -out "
                           "new.csr 2>&1 && openssl x509 -req -in new.csr -CA ca.crt -CAkey ca.key "
                           "-CAcreateserial -days 30 -sha256 -extfile ext -out new.crt 2>&1 && "
                           "mv new.crt broker.crt && mv new.key broker.key",
                       &out),
            0)
      << out;
  ASSERT_EQ(::kill(broker.pid(), SIGHUP), 0);

  // New handshakes get the new certificate within a few seconds.
  std::string new_serial = old_serial;
  for (int i = 0; i < 100 && new_serial == old_serial; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    new_serial = ServedSerial(broker.port());
  }
  EXPECT_NE(new_serial, old_serial) << "the renewed certificate was not served";

  // The stream opened before the reload still delivers: it was not dropped.
  auto xiyangdian = ConnectAs(broker.address(), "xiyangdian-thc");
  ASSERT_TRUE(refclient::ReferralClient(*xiyangdian, once)
                  .Submit(MakeReferral(kXiyangdian, "after", v1::ROUTINE, kPeopleHospital))
                  .ok());
  ASSERT_TRUE(stream->Read(&d)) << "the open stream was dropped by the reload";
  EXPECT_EQ(d.referral().client_request_id(), "after");

  // Guhuai's connection from before the revocation is refused from its next call...
  auto refused = refclient::ReferralClient(*guhuai, once)
                     .Submit(MakeReferral(kGuhuai, "revoked", v1::ROUTINE, kPeopleHospital));
  EXPECT_TRUE(absl::IsUnauthenticated(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("revoked"), std::string::npos) << refused.status();
  // ...and a new connection with that certificate does not get past the handshake.
  auto again = ConnectAs(broker.address(), "guhuai-thc");
  auto refused_again =
      refclient::ReferralClient(*again, once)
          .Submit(MakeReferral(kGuhuai, "revoked-2", v1::ROUTINE, kPeopleHospital));
  EXPECT_FALSE(refused_again.ok());
  EXPECT_TRUE(absl::IsUnavailable(refused_again.status()) ||
              absl::IsDeadlineExceeded(refused_again.status()) ||
              absl::IsUnauthenticated(refused_again.status()))
      << refused_again.status();
  // The status page too: the revoked auditor is refused, the operator served.
  EXPECT_EQ(StatusPageCode(broker.status_port(), "auditor"), "000");
  EXPECT_EQ(StatusPageCode(broker.status_port(), "operator"), "200");

  // A broken replacement (a key that is not the certificate's) is refused: the current
  // certificate stays and the broker keeps serving.
  ASSERT_EQ(RunCommand("cd " + pki_ +
                           " && openssl genpkey -algorithm EC -pkeyopt "
                           "ec_paramgen_curve:prime256v1 -out broker.key 2>&1",
                       &out),
            0)
      << out;
  ASSERT_EQ(::kill(broker.pid(), SIGHUP), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(ServedSerial(broker.port()), new_serial);
  auto tcm = ConnectAs(broker.address(), "xiyangdian-thc");
  EXPECT_TRUE(
      refclient::ReferralClient(*tcm, once)
          .Submit(MakeReferral(kXiyangdian, "after-bad-reload", v1::ROUTINE, kPeopleHospital))
          .ok());
  std::ifstream log(broker.log_path());
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_NE(text.str().find("tls reload refused"), std::string::npos);
  EXPECT_NE(text.str().find("tls.key: does not match"), std::string::npos);
  EXPECT_NE(text.str().find("refused a revoked client certificate cn=" + std::string(kGuhuai)),
            std::string::npos)
      << "the new connection was not refused by the handshake's revocation check";
  ctx.TryCancel();
}

TEST_F(TlsReload, ACrlTheCaDidNotSignKeepsTheBrokerFromStarting) {
  // A CRL issued by the foreign CA, in a directory of its own.
  std::filesystem::create_directories(pki_ + "/foreign");
  std::filesystem::copy_file(pki_ + "/foreign-ca.crt", pki_ + "/foreign/ca.crt");
  std::filesystem::copy_file(pki_ + "/foreign-ca.key", pki_ + "/foreign/ca.key");
  std::string out;
  ASSERT_EQ(RunCommand(std::string(REFBROKER_SOURCE_DIR) + "/certs/revoke-cert.sh --dir " + pki_ +
                           "/foreign 2>&1",
                       &out),
            0)
      << out;
  BrokerConfig config;
  config.tls_dir = pki_;
  config.tls_crl = pki_ + "/foreign/crl.pem";
  BrokerProcess broker(config);
  EXPECT_FALSE(broker.Start().ok());
  std::ifstream log(broker.log_path());
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_NE(text.str().find("tls.crl: not signed by a CA of tls.ca"), std::string::npos)
      << text.str();
}

// A hospital's delivery stream and a clinic's submit stream, both opened before their
// certificates were revoked: after the SIGHUP that loads the new CRL, the hospital is sent
// nothing more (its stream ends UNAUTHENTICATED at the next delivery) and the clinic's stream
// refuses its next referral.
TEST_F(TlsReload, AStreamOpenedBeforeItsCertificateWasRevokedIsEndedAndSentNothingMore) {
  auto started = StartWithCrl();
  ASSERT_NE(started, nullptr);
  BrokerProcess& broker = *started;
  refclient::RetryPolicy once;
  once.max_attempts = 1;
  once.per_call_timeout = std::chrono::milliseconds(3000);

  auto guhuai = ConnectAs(broker.address(), "guhuai-thc");
  auto submit_stub = v1::ReferralService::NewStub(guhuai->channel());
  grpc::ClientContext submit_ctx;
  submit_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto submits = submit_stub->SubmitReferrals(&submit_ctx);
  v1::SubmitReferralRequest request;
  *request.mutable_referral() =
      MakeReferral(kGuhuai, "stream-before", v1::ROUTINE, kPeopleHospital);
  ASSERT_TRUE(submits->Write(request));
  v1::SubmitReferralsResult result;
  ASSERT_TRUE(submits->Read(&result));
  ASSERT_EQ(result.code(), 0) << result.message();

  auto hospital = ConnectAs(broker.address(), "people-hospital");
  auto stub = v1::DeliveryService::NewStub(hospital->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->Subscribe(&ctx);
  v1::SubscribeRequest open;
  open.mutable_open()->mutable_queue()->set_owner(kPeopleHospital);
  open.mutable_open()->mutable_queue()->set_kind(v1::REFERRALS);
  open.mutable_open()->set_consumer_group("his");
  ASSERT_TRUE(stream->Write(open));
  v1::Delivery d;
  ASSERT_TRUE(stream->Read(&d));
  EXPECT_EQ(d.referral().client_request_id(), "stream-before");
  v1::SubscribeRequest ack;
  ack.mutable_ack()->set_sequence(d.sequence());
  ASSERT_TRUE(stream->Write(ack));

  ASSERT_TRUE(RevokeAndReload(broker, "people-hospital guhuai-thc"));

  // Another clinic's referral for the hospital: the hospital's open stream ends instead of
  // carrying it.
  auto xiyangdian = ConnectAs(broker.address(), "xiyangdian-thc");
  ASSERT_TRUE(refclient::ReferralClient(*xiyangdian, once)
                  .Submit(MakeReferral(kXiyangdian, "after", v1::ROUTINE, kPeopleHospital))
                  .ok());
  bool delivered = stream->Read(&d);
  EXPECT_FALSE(delivered) << "delivered to a revoked certificate: "
                          << d.referral().client_request_id();
  grpc::Status ended = stream->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAUTHENTICATED) << ended.error_message();
  EXPECT_NE(ended.error_message().find("revoked"), std::string::npos) << ended.error_message();

  // The clinic's stream refuses its next referral.
  *request.mutable_referral() = MakeReferral(kGuhuai, "stream-after", v1::ROUTINE, kPeopleHospital);
  ASSERT_TRUE(submits->Write(request));
  ASSERT_TRUE(submits->Read(&result));
  EXPECT_EQ(result.code(), static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)) << result.message();
  EXPECT_NE(result.message().find("revoked"), std::string::npos) << result.message();
  EXPECT_FALSE(result.has_referral());
  submits->WritesDone();
  EXPECT_TRUE(submits->Finish().ok());

  // The broker's log says why the subscription ended.
  EXPECT_TRUE(WaitForLog(broker, "subscription ends: UNAUTHENTICATED", 5));
}

// A consult session joined before the clinic's certificate was revoked: after the SIGHUP, the
// next message on the thread ends the clinic's session (UNAUTHENTICATED) instead of reaching it;
// the ECG center's session gets the message.
TEST_F(TlsReload, AConsultSessionOfARevokedCertificateEndsAtTheNextMessage) {
  auto started = StartWithCrl();
  ASSERT_NE(started, nullptr);
  BrokerProcess& broker = *started;
  auto guhuai = ConnectAs(broker.address(), "guhuai-thc");
  auto center = ConnectAs(broker.address(), "ecg-center");
  auto requested = refclient::ConsultClient(*guhuai).Request(MakeEcgConsult(kGuhuai, "sess-1"));
  ASSERT_TRUE(requested.ok()) << requested.status();
  const std::string id = requested->consult().id();
  v1::TransitionConsultRequest accept;
  accept.set_consult_id(id);
  accept.set_client_request_id("acc-1");
  accept.mutable_doctor()->set_id("ECG-07");
  accept.mutable_doctor()->set_name("刘医生");
  accept.mutable_accept();
  ASSERT_TRUE(refclient::ConsultClient(*center).Transition(accept).ok());
  auto clinic_session = refclient::ConsultSession::Join(*guhuai, id);
  auto center_session = refclient::ConsultSession::Join(*center, id);
  ASSERT_TRUE(clinic_session.ok()) << clinic_session.status();
  ASSERT_TRUE(center_session.ok()) << center_session.status();

  ASSERT_TRUE(RevokeAndReload(broker, "guhuai-thc"));

  v1::ConsultMessage m;
  m.set_consult_id(id);
  m.set_client_request_id("msg-after");
  m.mutable_author()->mutable_doctor()->set_id("ECG-07");
  m.mutable_author()->mutable_doctor()->set_name("刘医生");
  m.set_text("ST段抬高，建议立即上转");
  ASSERT_TRUE((*center_session)->Send(m).ok());
  auto at_center = (*center_session)->Next(std::chrono::seconds(10));
  ASSERT_TRUE(at_center.has_value());
  EXPECT_EQ(at_center->client_request_id(), "msg-after");
  auto at_clinic = (*clinic_session)->Next(std::chrono::seconds(3));
  EXPECT_FALSE(at_clinic.has_value()) << "sent to a revoked certificate";
  absl::Status ended = (*clinic_session)->Close();
  EXPECT_TRUE(absl::IsUnauthenticated(ended)) << ended;
  EXPECT_NE(ended.message().find("revoked"), std::string::npos) << ended;
  EXPECT_TRUE((*center_session)->Close().ok());
}

}  // namespace
}  // namespace refbroker::testing

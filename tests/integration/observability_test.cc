// Metrics and the status page through the real broker: a scrape during traffic, then the
// figures checked against what happened; the status page driven in headless Chromium with the
// operator's client certificate, and refused to a clinic and to a client without certificate.

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "client/refclient/referral_client.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

namespace v1 = refbroker::v1;
constexpr char kCentralHospital[] = "12411723417580002E";

std::string HttpGet(int port, const std::string& target) {
  namespace http = boost::beast::http;
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  boost::beast::tcp_stream stream(io);
  stream.connect(resolver.resolve("127.0.0.1", std::to_string(port)));
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  http::write(stream, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  return res.body();
}

// The value of the first sample of `name` whose labels contain every one of `labels`.
double Sample(const std::string& exposition, const std::string& name,
              const std::vector<std::string>& labels = {}) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string metric = line.substr(0, line.find_first_of("{ "));
    if (metric != name) continue;
    bool all = true;
    for (const auto& l : labels) all = all && line.find(l) != std::string::npos;
    if (all) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

class Observability : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    BrokerConfig config;
    config.emergency_deadline_s = 1;
    broker_ = new BrokerProcess(config);
    ASSERT_TRUE(broker_->Start().ok());
    auto clinic = ConnectAs(broker_->address(), "xiyangdian-thc");
    auto hospital = ConnectAs(broker_->address(), "people-hospital");
    refclient::ReferralClient client(*clinic);
    hospital_inbox_ = new CollectingSubscriber(*hospital, kPeopleHospital, "his", 8);
    std::atomic<bool> done{false};
    std::atomic<int> scrapes{0};
    std::thread scraper([&] {  // scrapes while the traffic flows
      while (!done) {
        if (HttpGet(broker_->metrics_port(), "/metrics").find("refbroker_rpcs_total") !=
            std::string::npos) {
          scrapes++;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    for (int i = 0; i < kRoutine; ++i) {
      auto out = client.Submit(
          MakeReferral(kXiyangdian, "obs-" + std::to_string(i), v1::ROUTINE, kPeopleHospital));
      ASSERT_TRUE(out.ok()) << out.status();
      ids_.push_back(out->referral().id());
    }
    // An emergency to a hospital whose system is down: its decision deadline (1 s) passes.
    auto late =
        client.Submit(MakeReferral(kXiyangdian, "obs-late", v1::EMERGENCY, kCentralHospital));
    ASSERT_TRUE(late.ok()) << late.status();
    for (const auto& id : ids_) ASSERT_TRUE(WaitForState(client, id, v1::DELIVERED)) << id;
    ASSERT_TRUE(WaitForState(client, late->referral().id(), v1::ESCALATED));
    done = true;
    scraper.join();
    scrapes_during_traffic_ = scrapes;
  }
  static void TearDownTestSuite() {
    delete hospital_inbox_;
    delete broker_;
  }

  static constexpr int kRoutine = 20;
  static BrokerProcess* broker_;
  static CollectingSubscriber* hospital_inbox_;
  static std::vector<std::string> ids_;
  static int scrapes_during_traffic_;
};
BrokerProcess* Observability::broker_ = nullptr;
CollectingSubscriber* Observability::hospital_inbox_ = nullptr;
std::vector<std::string> Observability::ids_;
int Observability::scrapes_during_traffic_ = 0;

TEST_F(Observability, MetricsMatchWhatHappened) {
  EXPECT_GT(scrapes_during_traffic_, 0);
  std::string m = HttpGet(broker_->metrics_port(), "/metrics");
  const std::string submit = "method=\"SubmitReferral\"", ok = "code=\"OK\"";
  EXPECT_EQ(Sample(m, "refbroker_rpcs_total", {submit, ok}), kRoutine + 1) << m;
  EXPECT_EQ(Sample(m, "refbroker_rpc_seconds_count", {submit, ok}), kRoutine + 1);
  EXPECT_EQ(Sample(m, "refbroker_submit_seconds_count"), kRoutine + 1);
  EXPECT_EQ(Sample(m, "refbroker_acks_total"), kRoutine);  // the People's Hospital acked each
  EXPECT_GE(Sample(m, "refbroker_deliveries_total"), kRoutine);
  EXPECT_EQ(Sample(m, "refbroker_redeliveries_total"), 0);
  EXPECT_EQ(Sample(m, "refbroker_deadline_breaches_total"), 1);
  // 21 referrals, 20 DELIVER updates to the sender, and the escalation's notices.
  EXPECT_GE(Sample(m, "refbroker_enqueued_total"), 2 * kRoutine + 2);
  const std::string people = "queue=\"" + std::string(kPeopleHospital) + "/referrals\"";
  const std::string central = "queue=\"" + std::string(kCentralHospital) + "/referrals\"";
  EXPECT_EQ(Sample(m, "refbroker_queue_depth", {people}), 0);
  EXPECT_EQ(Sample(m, "refbroker_queue_consumers", {people}), 1);
  EXPECT_EQ(Sample(m, "refbroker_queue_retained", {people}), kRoutine);
  EXPECT_EQ(Sample(m, "refbroker_queue_depth", {central}), 1);
  EXPECT_GE(Sample(m, "refbroker_queue_oldest_age_seconds", {central}), 1);
  EXPECT_EQ(Sample(m, "refbroker_queue_dead_letters", {people}), 0);
  double commits = Sample(m, "refbroker_commit_seconds_count");
  EXPECT_GT(commits, 0);
  EXPECT_GE(Sample(m, "refbroker_commit_batch_size_sum"), commits);
  EXPECT_GE(Sample(m, "refbroker_store_writes_total"), Sample(m, "refbroker_store_commits_total"));
}

// A throw-away NSS database with the test CA and one client certificate, as Chromium reads it.
std::string MakeBrowserHome(const std::string& dir, const std::string& stem) {
  std::filesystem::create_directories(dir + "/.pki/nssdb");
  std::string db = "sql:" + dir + "/.pki/nssdb";
  std::string out;
  std::string cmds =
      "certutil -N -d " + db + " --empty-password && certutil -A -n refbroker-ca -t C,, -i " +
      CertsDir() + "/ca.crt -d " + db + " && openssl pkcs12 -export -in " + CertPath(stem) +
      " -inkey " + KeyPath(stem) + " -out " + dir + "/client.p12 -passout pass: && pk12util -i " +
      dir + "/client.p12 -d " + db + " -W ''";
  EXPECT_EQ(RunCommand(cmds, &out), 0) << out;
  return dir;
}

TEST_F(Observability, StatusPageInHeadlessChromiumShowsTheQueuesAndToday) {
  ASSERT_TRUE(std::filesystem::exists("/etc/chromium/policies/managed/refbroker-tests.json"))
      << "scripts/test installs chromium and its client-certificate policy";
  std::string home = MakeBrowserHome(broker_->dir() + "/browser", "operator");
  std::string dom;
  std::string cmd = "HOME=" + home + " timeout 60 chromium --headless --no-sandbox --disable-gpu " +
                    "--user-data-dir=" + home + "/profile --dump-dom https://127.0.0.1:" +
                    std::to_string(broker_->status_port()) + "/";
  ASSERT_EQ(RunCommand(cmd + " 2>/dev/null", &dom), 0) << dom;
  EXPECT_NE(dom.find("平舆县紧密型县域医共体"), std::string::npos) << dom;
  EXPECT_NE(dom.find("平舆县医共体信息科 值班员"), std::string::npos) << dom;  // who is looking
  EXPECT_NE(dom.find("<b id=\"up\">" + std::to_string(kRoutine + 1) + "</b>"), std::string::npos)
      << dom;
  EXPECT_NE(dom.find("<b id=\"breaches\">1</b>"), std::string::npos) << dom;
  // The hospital whose system is down: its queue row is marked late, depth 1.
  std::string row =
      "<tr data-queue=\"" + std::string(kCentralHospital) + "/referrals\" class=\"late\">";
  size_t at = dom.find(row);
  ASSERT_NE(at, std::string::npos) << dom;
  EXPECT_NE(dom.find("<td class=\"depth\">1</td>", at), std::string::npos);
  EXPECT_NE(dom.find("<tr data-queue=\"" + std::string(kPeopleHospital) + "/referrals\">"),
            std::string::npos);
}

TEST_F(Observability, StatusPageRefusesAClinicAndAClientWithoutCertificate) {
  std::string url = "https://127.0.0.1:" + std::to_string(broker_->status_port()) + "/";
  std::string code;
  RunCommand("curl -s -o /dev/null -w '%{http_code}' --cacert " + CertsDir() + "/ca.crt --cert " +
                 CertPath("xiyangdian-thc") + " --key " + KeyPath("xiyangdian-thc") + " " + url,
             &code);
  EXPECT_EQ(code, "403");
  std::string out;
  EXPECT_NE(RunCommand("curl -s -o /dev/null --cacert " + CertsDir() + "/ca.crt " + url, &out), 0)
      << "the TLS handshake must fail without a client certificate";
  code.clear();
  RunCommand("curl -s -o /dev/null -w '%{http_code}' --cacert " + CertsDir() + "/ca.crt --cert " +
                 CertPath("operator") + " --key " + KeyPath("operator") + " " + url,
             &code);
  EXPECT_EQ(code, "200");
}

}  // namespace
}  // namespace refbroker::testing

// The referral pipe end to end: a township clinic submits an up-referral over mTLS, the real
// broker makes it durable, the county hospital subscribed to its queue receives and acks it,
// and the operator sees the queue with refctl.

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fstream>

#include "client/refclient/referral_client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/broker_process.h"
#include "tests/support/test_clients.h"

namespace refbroker::testing {
namespace {

class ReferralPipeTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(broker_.Start().ok()) << broker_.log_path(); }
  BrokerProcess broker_;
};

TEST_F(ReferralPipeTest, ClinicReferralReachesTheSubscribedHospitalAndIsAcked) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  auto hospital = ConnectAs(broker_.address(), "people-hospital");
  refclient::ReferralClient referrals(*clinic);
  auto submitted = referrals.Submit(MakeReferral(kXiyangdian, "his-0001"));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const auto& ref = submitted->referral();
  EXPECT_EQ(ref.state(), refbroker::v1::SUBMITTED);
  EXPECT_EQ(ref.to_institution(), kPeopleHospital);  // the alliance's default receiver
  EXPECT_EQ(ref.id().rfind("ref-", 0), 0u);

  CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 8);
  ASSERT_TRUE(sub.WaitFor(1, 10));
  auto got = sub.deliveries().front();
  EXPECT_EQ(got.referral().id(), ref.id());
  EXPECT_EQ(got.referral().patient().identifiers(0).value(), ref.patient().identifiers(0).value());
  EXPECT_EQ(got.attempt(), 1u);
  EXPECT_EQ(got.queue().owner(), kPeopleHospital);

  // The ack is durable and moves the referral to DELIVERED, which the sender can read.
  refbroker::v1::ReferralState state = refbroker::v1::SUBMITTED;
  for (int i = 0; i < 100 && state != refbroker::v1::DELIVERED; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto read = referrals.Get(ref.id());
    ASSERT_TRUE(read.ok()) << read.status();
    state = read->state();
  }
  EXPECT_EQ(state, refbroker::v1::DELIVERED);
  sub.Stop();

  std::string out;
  ASSERT_EQ(
      RunRefctl(broker_.address(), "--json queues --owner " + std::string(kPeopleHospital), &out),
      0)
      << out;
  EXPECT_NE(out.find("\"retained\": \"1\""), std::string::npos) << out;
  EXPECT_EQ(out.find("\"depth\""), std::string::npos) << out;  // 0: nothing left to deliver
}

TEST_F(ReferralPipeTest, TheBrokerLogNamesNoPatient) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  auto referral = MakeReferral(kXiyangdian, "phi-1");
  auto submitted = refclient::ReferralClient(*clinic).Submit(referral);
  ASSERT_TRUE(submitted.ok());
  auto bad = referral;
  bad.set_client_request_id("phi-2");
  bad.mutable_patient()->set_birth_date("1900-01-01");
  EXPECT_FALSE(refclient::ReferralClient(*clinic).Submit(bad).ok());
  auto hospital = ConnectAs(broker_.address(), "people-hospital");
  CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 1);
  ASSERT_TRUE(sub.WaitFor(1, 10));
  sub.Stop();
  ASSERT_EQ(broker_.Stop(), 0);  // SIGTERM with a subscriber gone: clean exit
  std::ifstream in(broker_.log_path());
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find(submitted->referral().id()), std::string::npos) << "log has the broker id";
  const auto& p = referral.patient();
  EXPECT_EQ(log.find(p.identifiers(0).value()), std::string::npos);
  EXPECT_EQ(log.find(p.identifiers(0).value().substr(6, 8)), std::string::npos);
  EXPECT_EQ(log.find(p.name()), std::string::npos);
  EXPECT_EQ(log.find(referral.reason()), std::string::npos);
}

TEST_F(ReferralPipeTest, RetryWithTheSameClientRequestIdYieldsTheSameReferral) {
  auto clinic = ConnectAs(broker_.address(), "guhuai-thc");
  refclient::ReferralClient referrals(*clinic);
  auto referral = MakeReferral(kGuhuai, "his-retry-1");
  auto first = referrals.Submit(referral);
  auto second = referrals.Submit(referral);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->referral().id(), second->referral().id());
  EXPECT_FALSE(first->duplicate());
  EXPECT_TRUE(second->duplicate());

  referral.set_reason("a different referral under the same id");
  auto third = referrals.Submit(referral);
  EXPECT_TRUE(absl::IsAlreadyExists(third.status())) << third.status();
  EXPECT_NE(third.status().message().find("client_request_id"), absl::string_view::npos);

  // One message only in the receiver's queue.
  auto hospital = ConnectAs(broker_.address(), "people-hospital");
  CollectingSubscriber sub(*hospital, kPeopleHospital, "his", 8);
  ASSERT_TRUE(sub.WaitFor(1, 10));
  EXPECT_FALSE(sub.WaitFor(2, 1.5));
}

TEST_F(ReferralPipeTest, ReferralIsReadableOnlyByItsPartiesAndTheOperator) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  auto submitted = refclient::ReferralClient(*clinic).Submit(MakeReferral(kXiyangdian, "r-1"));
  ASSERT_TRUE(submitted.ok());
  const std::string id = submitted->referral().id();
  auto op = ConnectAs(broker_.address(), "operator");
  EXPECT_TRUE(refclient::ReferralClient(*op).Get(id).ok());
  auto hospital = ConnectAs(broker_.address(), "people-hospital");
  EXPECT_TRUE(refclient::ReferralClient(*hospital).Get(id).ok());
  auto other = ConnectAs(broker_.address(), "guhuai-thc");
  EXPECT_TRUE(absl::IsPermissionDenied(refclient::ReferralClient(*other).Get(id).status()));
  EXPECT_TRUE(absl::IsNotFound(refclient::ReferralClient(*op).Get("ref-unknown").status()));
}

TEST_F(ReferralPipeTest, HealthServingAndMetricsExposed) {
  auto op = ConnectAs(broker_.address(), "operator");
  auto stub = grpc::health::v1::Health::NewStub(op->channel());
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("refbroker.v1.ReferralService");
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(stub->Check(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  namespace http = boost::beast::http;
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"),
                  static_cast<unsigned short>(broker_.metrics_port())});
  http::request<http::empty_body> get(http::verb::get, "/metrics", 11);
  http::write(socket, get);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(socket, buf, res);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_NE(res.body().find("refbroker_store_commits_total"), std::string::npos);
}

TEST_F(ReferralPipeTest, RefctlQueuesShowsDepthByDirection) {
  auto clinic = ConnectAs(broker_.address(), "xiyangdian-thc");
  refclient::ReferralClient referrals(*clinic);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(referrals.Submit(MakeReferral(kXiyangdian, "q-" + std::to_string(i))).ok());
  }
  std::string table;
  ASSERT_EQ(RunRefctl(broker_.address(), "queues", &table), 0) << table;
  EXPECT_NE(table.find("Up-referral queues"), std::string::npos) << table;
  EXPECT_NE(table.find("Down-referral queues"), std::string::npos) << table;
  EXPECT_NE(table.find("平舆县人民医院"), std::string::npos) << table;
  std::string json;
  ASSERT_EQ(
      RunRefctl(broker_.address(), "--json queues --owner " + std::string(kPeopleHospital), &json),
      0);
  EXPECT_NE(json.find("\"depth\": \"3\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"direction\": \"up\""), std::string::npos) << json;
}

}  // namespace
}  // namespace refbroker::testing

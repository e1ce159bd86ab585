// The broker's TOML configuration: the documented sample loads and validates, and errors name
// the key.

#include "broker/config/broker_options.h"

#include <gtest/gtest.h>

namespace refbroker::config {
namespace {

TEST(BrokerOptions, TheDocumentedSampleLoadsWithItsConsultDeadlines) {
  auto o = BrokerOptions::LoadFile(std::string(REFBROKER_SOURCE_DIR) + "/deploy/refbroker.toml");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->Validate().ok()) << o->Validate();
  EXPECT_EQ(o->consult.accept.emergency_s, 600);
  EXPECT_EQ(o->consult.accept.routine_s, 86400);
  EXPECT_EQ(o->consult.report_by_service.at("ECG_READING").emergency_s, 1800);
  EXPECT_EQ(o->consult.report_by_service.at("IMAGING_READING").routine_s, 172800);
  EXPECT_EQ(o->storage.checkpoint_interval_ms, 20);
}

TEST(BrokerOptions, AServiceTableInheritsTheDefaultReportDeadlines) {
  auto o = BrokerOptions::LoadString(
      "[server]\nlisten='127.0.0.1:0'\n[tls]\nca='a'\ncert='b'\nkey='c'\n"
      "[consult.report]\nurgent_s = 100\n[consult.report.PATHOLOGY_READING]\nemergency_s = 5\n",
      "/tmp");
  ASSERT_TRUE(o.ok()) << o.status();
  const auto& p = o->consult.report_by_service.at("PATHOLOGY_READING");
  EXPECT_EQ(p.emergency_s, 5);
  EXPECT_EQ(p.urgent_s, 100);
  EXPECT_TRUE(o->Validate().ok());
}

TEST(BrokerOptions, AnOutOfRangeDeadlineNamesItsKey) {
  auto o = BrokerOptions::LoadString(
      "[server]\nlisten='127.0.0.1:0'\n[tls]\nca='a'\ncert='b'\nkey='c'\n"
      "[consult.report.ECG_READING]\nemergency_s = 0\n",
      "/tmp");
  ASSERT_TRUE(o.ok()) << o.status();
  absl::Status s = o->Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("consult.report.ECG_READING.emergency_s"), std::string::npos) << s;
}

TEST(BrokerOptions, DeliveryWorkersAreReadAndCheckedByName) {
  const std::string head = "[server]\nlisten='127.0.0.1:0'\n[tls]\nca='a'\ncert='b'\nkey='c'\n";
  auto o = BrokerOptions::LoadString(head + "[delivery]\nworkers = 2\n", "/tmp");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->delivery.workers, 2);
  EXPECT_TRUE(o->Validate().ok());
  auto zero = BrokerOptions::LoadString(head + "[delivery]\nworkers = 0\n", "/tmp");
  ASSERT_TRUE(zero.ok()) << zero.status();
  absl::Status s = zero->Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("delivery.workers"), std::string::npos) << s;
}

// Found by config_fuzz: a float where an integer belongs was cast by the TOML library (undefined
// behaviour for 2.5e33), and an integer too large for an int field wrapped around.
TEST(BrokerOptions, AnIntegerKeyRefusesAFloatAndAnIntegerTooLarge) {
  const std::string head = "[server]\nlisten='127.0.0.1:0'\n[tls]\nca='a'\ncert='b'\nkey='c'\n";
  struct Case {
    std::string toml, key;
  } cases[] = {
      {"[consult.report.ECG_READING]\nemergency_s = 2555555555555555555555555555555555.8\n",
       "consult.report.ECG_READING.emergency_s: must be an integer"},
      {"[referral]\nurgent_deadline_s = 7200.0\n",
       "referral.urgent_deadline_s: must be an integer"},
      {"[delivery]\nack_deadline_ms = 4294967396\n",
       "delivery.ack_deadline_ms: 4294967396 is too large"},
      {"[limits]\nmax_streams = '8'\n", "limits.max_streams: must be an integer"},
  };
  for (const auto& c : cases) {
    auto o = BrokerOptions::LoadString(head + c.toml, "/tmp");
    ASSERT_FALSE(o.ok()) << c.toml;
    EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(o.status().message().find(c.key), std::string::npos) << o.status();
  }
}

TEST(BrokerOptions, TheComposeConfigNamesThePostgresStoreWithoutAPassword) {
  auto o = BrokerOptions::LoadFile(std::string(REFBROKER_SOURCE_DIR) + "/deploy/compose.toml");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->Validate().ok()) << o->Validate();
  EXPECT_EQ(o->storage.engine, "postgres");
  EXPECT_EQ(o->storage.schema, "refbroker");
  EXPECT_EQ(o->storage.conninfo.find("password"), std::string::npos);
}

TEST(BrokerOptions, APostgresStoreNeedsAConnectionStringAndAPlainSchemaName) {
  const std::string base = "[server]\nlisten='127.0.0.1:0'\n[tls]\nca='a'\ncert='b'\nkey='c'\n";
  auto o = BrokerOptions::LoadString(base + "[storage]\nengine = 'postgres'\n", "/tmp");
  ASSERT_TRUE(o.ok());
  EXPECT_NE(o->Validate().message().find("storage.conninfo"), std::string::npos);
  o = BrokerOptions::LoadString(
      base + "[storage]\nengine = 'postgres'\nconninfo = 'host=db'\nschema = 'x; DROP'\n", "/tmp");
  ASSERT_TRUE(o.ok());
  EXPECT_NE(o->Validate().message().find("storage.schema"), std::string::npos);
  o = BrokerOptions::LoadString(
      base + "[storage]\nengine = 'postgres'\nconninfo = 'host=db'\nschema = 'pg_catalog'\n",
      "/tmp");
  ASSERT_TRUE(o.ok());
  EXPECT_NE(o->Validate().message().find("storage.schema"), std::string::npos);
  o = BrokerOptions::LoadString(base + "[storage]\nengine = 'oracle'\n", "/tmp");
  ASSERT_TRUE(o.ok());
  EXPECT_NE(o->Validate().message().find("storage.engine"), std::string::npos);
}

}  // namespace
}  // namespace refbroker::config

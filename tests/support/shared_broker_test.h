#pragma once
// SharedBrokerTest<Param>: a parameterized test suite whose cases share one real broker,
// started before the suite's first test and killed after its last (each case must leave the
// broker as it found it, e.g. by being rejected).

#include <gtest/gtest.h>

#include "tests/support/broker_process.h"

namespace refbroker::testing {

template <typename Param>
class SharedBrokerTest : public ::testing::TestWithParam<Param> {
 protected:
  static void SetUpTestSuite() {
    broker_ = new BrokerProcess();
    ASSERT_TRUE(broker_->Start().ok()) << broker_->log_path();
  }
  static void TearDownTestSuite() {
    delete broker_;
    broker_ = nullptr;
  }
  static int64_t CountRows(const char* table) { return broker_->CountRows(table); }

  inline static BrokerProcess* broker_ = nullptr;
};

}  // namespace refbroker::testing

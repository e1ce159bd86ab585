#pragma once
// A ConsultWorkflow (with the referral and result workflows it converts to and publishes
// through) over a real SqliteStore, the sample registry and a controllable clock.

#include <memory>

#include "broker/domain/consult_workflow.h"
#include "broker/domain/result_workflow.h"
#include "broker/recognition/catalogue.h"
#include "tests/support/workflow_fixture.h"

namespace refbroker::testing {

class ConsultFixture : public WorkflowFixture {
 protected:
  static constexpr char kEcgCenter[] = "12411723MB0A10013K";  // 平舆县心电诊断中心

  void SetUp() override {
    WorkflowFixture::SetUp();
    auto cat = recognition::Catalogue::LoadFile(std::string(REFBROKER_SOURCE_DIR) +
                                                "/deploy/recognition.toml");
    ASSERT_TRUE(cat.ok()) << cat.status();
    catalogue_ = std::make_unique<recognition::CatalogueHolder>(
        std::shared_ptr<const recognition::Catalogue>(std::move(*cat)));
    results_ = std::make_unique<domain::ResultWorkflow>(
        *store_, *registry_, *catalogue_, clock_, domain::ResultLimits(),
        [this](const std::string& q) { notified_.push_back(q); });
    domain::ReferralWorkflow::Hooks referral_hooks;  // as the broker wires it
    referral_hooks.notify = [this](const std::string& q) { notified_.push_back(q); };
    referral_hooks.stamp_results = [this](const refbroker::v1::Referral& r,
                                          const std::string& receiver) {
      return results_->VerdictsFor(r.patient(), r.attached_result_ids(), receiver,
                                   "referral.attached_result_ids");
    };
    workflow_ = std::make_unique<domain::ReferralWorkflow>(
        *store_, *policy_, *router_, clock_, domain::WorkflowOptions(), referral_hooks);
    OpenConsults(domain::ConsultOptions());
  }

  void TearDown() override {
    consults_.reset();
    results_.reset();
    WorkflowFixture::TearDown();
  }

  void OpenConsults(domain::ConsultOptions options) {
    domain::ConsultWorkflow::Hooks hooks;
    hooks.notify = [this](const std::string& q) { notified_.push_back(q); };
    hooks.stamp_results = [this](const refbroker::v1::Patient& p,
                                 const google::protobuf::RepeatedPtrField<std::string>& ids,
                                 const std::string& receiver, const std::string& field) {
      return results_->VerdictsFor(p, ids, receiver, field);
    };
    hooks.publish_reading = [this](const auth::Principal& who, const refbroker::v1::ResultRecord& r)
        -> absl::StatusOr<refbroker::v1::ResultRecord> {
      auto out = results_->Publish(who, r);
      if (!out.ok()) return out.status();
      return out->result();
    };
    hooks.submit_referral =
        [this](const auth::Principal& who,
               const refbroker::v1::Referral& r) -> absl::StatusOr<refbroker::v1::Referral> {
      auto out = workflow_->Submit(who, r, r.converted_from_consult_id());
      if (!out.ok()) return out.status();
      return out->referral;
    };
    hooks.message_stored = [this](const refbroker::v1::ConsultMessage& m) {
      stored_messages_.push_back(m);
    };
    consults_ = std::make_unique<domain::ConsultWorkflow>(*store_, *registry_, *policy_, clock_,
                                                          std::move(options), hooks);
  }

  refbroker::v1::Consult NewConsult(const std::string& request_id,
                                    refbroker::v1::Priority p = refbroker::v1::ROUTINE) {
    refsim::SyntheticReferrals gen(std::hash<std::string>()(request_id));
    auto c = gen.MakeConsult(kClinic, kEcgCenter, refbroker::v1::ECG_READING, "", p, request_id);
    c.mutable_consent()->mutable_obtained_at()->set_seconds(kStart / 1000000 - 60);
    return c;
  }

  std::string RequestEcg(const std::string& request_id,
                         refbroker::v1::Priority p = refbroker::v1::ROUTINE) {
    auto out = consults_->Request(P(kClinic), NewConsult(request_id, p));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->value.id() : "";
  }

  refbroker::v1::IssueReportRequest Report(const std::string& id, const std::string& request_id,
                                           const std::string& addendum_to = "") {
    refbroker::v1::IssueReportRequest r;
    r.set_consult_id(id);
    r.set_client_request_id(request_id);
    auto* c = r.mutable_content();
    c->set_findings("窦性心律，II、III、aVF导联ST段抬高0.2mV");
    c->set_opinion("急性下壁心肌梗死可能，建议立即转诊行PCI");
    c->set_recommendations("阿司匹林300mg嚼服；立即上转");
    c->mutable_consultant()->set_id("ECG-07");
    c->mutable_consultant()->set_name("刘医生");
    c->set_addendum_to(addendum_to);
    return r;
  }

  std::unique_ptr<recognition::CatalogueHolder> catalogue_;
  std::unique_ptr<domain::ResultWorkflow> results_;
  std::unique_ptr<domain::ConsultWorkflow> consults_;
  std::vector<refbroker::v1::ConsultMessage> stored_messages_;
};

}  // namespace refbroker::testing

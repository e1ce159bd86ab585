#pragma once
// A scripted day of an alliance with known journeys and times (referrals up and down,
// accepted, declined, escalated, completed; ECG readings; re-tests), and the report built from
// it: the exact figures are checked in tests/broker/report, its screens in tests/client.

#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "broker/report/alliance_report.h"

namespace refbroker::testing {
namespace scripted {

using google::protobuf::util::TimeUtil;
using report::ConsultFacts;
using report::ReferralFacts;
using report::ReportInput;
namespace v1 = refbroker::v1;

inline constexpr char kPeople[] = "12411723417580001B";
inline constexpr char kTcm[] = "12411723417580004L";
inline constexpr char kEcg[] = "12411723MB0A10013K";
inline constexpr char kXiyangdian[] = "124117234175811018";
inline constexpr char kGuhuai[] = "12411723417581102B";

inline constexpr Micros kMinute = 60LL * 1000000;
// 2026-11-02 09:00 China Standard Time.
inline const Micros kT0 =
    TimeUtil::TimestampToMicroseconds(TimeUtil::SecondsToTimestamp(1793581200));

inline std::unique_ptr<auth::Registry> LoadRegistry() {
  auto r = auth::Registry::LoadFile(std::string(REFBROKER_SOURCE_DIR) + "/deploy/registry.toml");
  EXPECT_TRUE(r.ok()) << r.status();
  return std::move(*r);
}

class Script {
 public:
  ReferralFacts& Referral(const std::string& id, int direction, const std::string& from,
                          const std::string& to, Micros at, const std::string& journey = "") {
    ReferralFacts& f = input.referrals.emplace_back();
    f.record.id = id;
    f.record.direction = direction;
    f.record.sender = from;
    f.record.receiver = to;
    f.record.submitted_at = kT0 + at;
    f.record.journey_id = journey.empty() ? id : journey;
    Event(f, v1::SUBMIT, from, at);
    return f;
  }
  static v1::ReferralEvent& Event(ReferralFacts& f, v1::ReferralAction action,
                                  const std::string& actor, Micros at) {
    v1::ReferralEvent& e = f.events.emplace_back();
    e.set_action(action);
    e.mutable_actor()->set_institution(actor);
    *e.mutable_at() = TimeUtil::MicrosecondsToTimestamp(kT0 + at);
    return e;
  }
  ConsultFacts& Consult(const std::string& id, v1::ConsultServiceType service,
                        const std::string& from, const std::string& to) {
    ConsultFacts& c = input.consults.emplace_back();
    c.record.id = id;
    c.record.service = service;
    c.record.requester = from;
    c.record.target = to;
    c.record.requested_at = kT0;
    return c;
  }
  static void Event(ConsultFacts& c, v1::ConsultAction action, Micros at) {
    v1::ConsultEvent& e = c.events.emplace_back();
    e.set_action(action);
    *e.mutable_at() = TimeUtil::MicrosecondsToTimestamp(kT0 + at);
  }
  ReportInput input;
};

}  // namespace scripted

inline refbroker::v1::AllianceReport ScriptedReport() {
  using namespace scripted;
  Script s;
  s.input.alliance = "pingyu";
  s.input.from = kT0 - 60 * kMinute;
  s.input.to = kT0 + 24 * 60 * kMinute;
  // R1: accepted after 10 min, completed with an outcome: a closed loop. Two results attached,
  // one recognizable for the receiver.
  auto& r1 = s.Referral("R1", v1::UP, kXiyangdian, kPeople, 0);
  Script::Event(r1, v1::ACCEPT, kPeople, 10 * kMinute);
  Script::Event(r1, v1::COMPLETE, kPeople, 100 * kMinute);
  r1.body.add_attached_result_verdicts()->set_recognizable(true);
  r1.body.add_attached_result_verdicts()->set_recognizable(false);
  // R2: accepted after 30 min; closed by the down leg R5 of the same journey.
  auto& r2 = s.Referral("R2", v1::UP, kXiyangdian, kPeople, 5 * kMinute);
  Script::Event(r2, v1::ACCEPT, kPeople, 35 * kMinute);
  // R3: declined for capacity.
  auto& r3 = s.Referral("R3", v1::UP, kGuhuai, kTcm, 0);
  Script::Event(r3, v1::DECLINE, kTcm, 20 * kMinute).set_decline_reason(v1::NO_CAPACITY);
  // R4: escalated (decision deadline missed), then accepted after 60 min.
  auto& r4 = s.Referral("R4", v1::UP, kGuhuai, kPeople, 0);
  Script::Event(r4, v1::ESCALATE, "", 50 * kMinute);
  Script::Event(r4, v1::ACCEPT, kPeople, 60 * kMinute);
  // R5: R2's patient back down, accepted by the township after 5 min.
  auto& r5 = s.Referral("R5", v1::DOWN, kPeople, kXiyangdian, 200 * kMinute, "R2");
  Script::Event(r5, v1::ACCEPT, kXiyangdian, 205 * kMinute);
  // Consults: two ECG readings (12 and 30 min, the second escalated), one unanswered opinion.
  auto& c1 = s.Consult("C1", v1::ECG_READING, kXiyangdian, kEcg);
  Script::Event(c1, v1::CONSULT_REPORT, 12 * kMinute);
  Script::Event(c1, v1::CONSULT_ADDENDUM, 40 * kMinute);  // not a second turnaround
  auto& c2 = s.Consult("C2", v1::ECG_READING, kGuhuai, kEcg);
  Script::Event(c2, v1::CONSULT_ESCALATE, 10 * kMinute);
  Script::Event(c2, v1::CONSULT_REPORT, 30 * kMinute);
  s.Consult("C3", v1::SPECIALTY_OPINION, kGuhuai, kPeople);
  // Re-tests recorded by the People's Hospital; one repeat without a reason it published.
  s.input.retests = {{kPeople, v1::RETEST_CONDITION_CHANGED, 2}, {kPeople, 0, 1}};
  return report::BuildAllianceReport(*LoadRegistry(), s.input);
}

}  // namespace refbroker::testing

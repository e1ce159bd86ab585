// Fuzz target: every request a client can send to the referral, consult and result services,
// through the workflows that validate and store it (the sample registry and catalogue, a real
// SqliteStore in a temporary directory, a fixed clock). Whatever the bytes, the answer is a
// status or a stored record: never a crash, a leak, undefined behaviour or a hang.
//
// Input: byte 0 picks the operation (kOps), byte 1 the caller (kCallers), the rest is the
// request message in protobuf wire format, as it arrives from a client. Ids "@referral" and
// "@consult" in a request stand for a referral and a consult the fixture stored at start, so
// that transitions, reports and messages reach past "not found" (see corpus/requests/).

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "broker/auth/access_policy.h"
#include "broker/auth/registry.h"
#include "broker/common/clock.h"
#include "broker/domain/consult_workflow.h"
#include "broker/domain/referral_workflow.h"
#include "broker/domain/result_workflow.h"
#include "broker/recognition/catalogue.h"
#include "broker/routing/referral_router.h"
#include "broker/storage/sqlite_store.h"
#include "client/sim/synthetic_referral.h"
#include "tests/support/scratch_dir.h"

namespace {

namespace v1 = refbroker::v1;
using refbroker::Micros;

constexpr Micros kNow = 1795000000LL * 1000000;  // 2026-11-18, the seeds' consent is before it

class FixedClock final : public refbroker::Clock {
 public:
  Micros Now() const override { return kNow; }
};

constexpr const char* kCallers[] = {
    "124117234175811018",  // 西洋店镇卫生院 (a clinic)
    "12411723417581102B",  // 古槐街道卫生院 (another clinic of the alliance)
    "12411723417580001B",  // 平舆县人民医院 (a county hospital)
    "12411723MB0A10013K",  // 平舆县心电诊断中心 (ECG center)
    "12411723MB0A10014N",  // 平舆县医学检验中心 (lab center)
    "OP-PINGYU-XXK-01",    // the alliance's operator
};

// Everything the broker's services hold, built once per fuzzing process.
struct Broker {
  FixedClock clock;
  std::string dir;
  std::unique_ptr<refbroker::storage::SqliteStore> store;
  std::unique_ptr<refbroker::auth::Registry> registry;
  std::unique_ptr<refbroker::auth::AccessPolicy> policy;
  std::unique_ptr<refbroker::routing::ReferralRouter> router;
  std::unique_ptr<refbroker::recognition::CatalogueHolder> catalogue;
  std::unique_ptr<refbroker::domain::ResultWorkflow> results;
  std::unique_ptr<refbroker::domain::ReferralWorkflow> referrals;
  std::unique_ptr<refbroker::domain::ConsultWorkflow> consults;
  std::string referral_id, consult_id;  // stored at start: "@referral", "@consult"

  Broker() {
    spdlog::set_level(spdlog::level::warn);  // a log line per stored input would slow fuzzing
    // Strings that are not UTF-8 fail to parse, as they do on the wire; not worth a log line each.
    google::protobuf::SetLogHandler(
        [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
    dir = (refbroker::testing::ScratchDir() / "fuzz").string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    refbroker::storage::SqliteOptions so;
    so.path = dir + "/store.db";
    store = Must(refbroker::storage::SqliteStore::Open(so));
    registry = Must(refbroker::auth::Registry::LoadFile(std::string(REFBROKER_SOURCE_DIR) +
                                                        "/deploy/registry.toml"));
    policy = std::make_unique<refbroker::auth::AccessPolicy>(*registry);
    router = std::make_unique<refbroker::routing::ReferralRouter>(*registry);
    catalogue = std::make_unique<refbroker::recognition::CatalogueHolder>(
        std::shared_ptr<const refbroker::recognition::Catalogue>(
            Must(refbroker::recognition::Catalogue::LoadFile(std::string(REFBROKER_SOURCE_DIR) +
                                                             "/deploy/recognition.toml"))));
    results = std::make_unique<refbroker::domain::ResultWorkflow>(
        *store, *registry, *catalogue, clock, refbroker::domain::ResultLimits(),
        [](const std::string&) {});
    refbroker::domain::ReferralWorkflow::Hooks rh;  // as BrokerServer wires them
    rh.notify = [](const std::string&) {};
    rh.stamp_results = [this](const v1::Referral& r, const std::string& receiver) {
      return results->VerdictsFor(r.patient(), r.attached_result_ids(), receiver,
                                  "referral.attached_result_ids");
    };
    referrals = std::make_unique<refbroker::domain::ReferralWorkflow>(
        *store, *policy, *router, clock, refbroker::domain::WorkflowOptions(), rh);
    refbroker::domain::ConsultWorkflow::Hooks ch;
    ch.notify = [](const std::string&) {};
    ch.stamp_results = [this](const v1::Patient& p,
                              const google::protobuf::RepeatedPtrField<std::string>& ids,
                              const std::string& receiver, const std::string& field) {
      return results->VerdictsFor(p, ids, receiver, field);
    };
    ch.publish_reading = [this](const refbroker::auth::Principal& who,
                                const v1::ResultRecord& r) -> absl::StatusOr<v1::ResultRecord> {
      auto out = results->Publish(who, r);
      if (!out.ok()) return out.status();
      return out->result();
    };
    ch.submit_referral = [this](const refbroker::auth::Principal& who,
                                const v1::Referral& r) -> absl::StatusOr<v1::Referral> {
      auto out = referrals->Submit(who, r, r.converted_from_consult_id());
      if (!out.ok()) return out.status();
      return out->referral;
    };
    ch.message_stored = [](const v1::ConsultMessage&) {};
    consults = std::make_unique<refbroker::domain::ConsultWorkflow>(
        *store, *registry, *policy, clock, refbroker::domain::ConsultOptions(), ch);

    refsim::SyntheticReferrals gen(1);
    auto referral = gen.Make(kCallers[0], kCallers[2], v1::ROUTINE, "fuzz-fixture-referral");
    referral.mutable_consent()->mutable_obtained_at()->set_seconds(kNow / 1000000 - 60);
    referral_id = Must(referrals->Submit(Caller(0), referral)).referral.id();
    auto consult = gen.MakeConsult(kCallers[0], kCallers[3], v1::ECG_READING, "", v1::ROUTINE,
                                   "fuzz-fixture-consult");
    consult.mutable_consent()->mutable_obtained_at()->set_seconds(kNow / 1000000 - 60);
    consult_id = Must(consults->Request(Caller(0), consult)).value.id();
  }
  ~Broker() {
    consults.reset();
    referrals.reset();
    results.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }

  const refbroker::auth::Principal& Caller(uint8_t byte) const {
    return *registry->Find(kCallers[byte % (sizeof(kCallers) / sizeof(kCallers[0]))]);
  }

  // "@referral" / "@consult" → the stored ones' ids.
  void Resolve(std::string* id) const {
    if (*id == "@referral") *id = referral_id;
    if (*id == "@consult") *id = consult_id;
  }

  template <typename T>
  static T Must(absl::StatusOr<T> v) {
    if (!v.ok()) {
      std::fprintf(stderr, "fuzz fixture: %s\n", v.status().ToString().c_str());
      std::abort();
    }
    return std::move(*v);
  }
};

Broker& TheBroker() {
  static Broker* broker = new Broker();  // lives as long as the process (no exit-time teardown)
  return *broker;
}

template <typename M>
bool Parse(const uint8_t* data, size_t size, M* m) {
  return m->ParseFromArray(data, static_cast<int>(size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Broker& b = TheBroker();
  const uint8_t op = data[0] % 14;
  const auto& caller = b.Caller(data[1]);
  data += 2;
  size -= 2;
  absl::Status status = absl::UnknownError("not a message");
  switch (op) {
    case 0: {
      v1::Referral m;
      if (!Parse(data, size, &m)) break;
      b.Resolve(m.mutable_continues_referral_id());
      status = b.referrals->Submit(caller, m).status();
      break;
    }
    case 1: {
      v1::TransitionReferralRequest m;
      if (!Parse(data, size, &m)) break;
      b.Resolve(m.mutable_referral_id());
      status = b.referrals->Transition(caller, m).status();
      break;
    }
    case 2: {
      v1::Consult m;
      if (Parse(data, size, &m)) status = b.consults->Request(caller, m).status();
      break;
    }
    case 3: {
      v1::TransitionConsultRequest m;
      if (!Parse(data, size, &m)) break;
      b.Resolve(m.mutable_consult_id());
      status = b.consults->Transition(caller, m).status();
      break;
    }
    case 4: {
      v1::IssueReportRequest m;
      if (!Parse(data, size, &m)) break;
      b.Resolve(m.mutable_consult_id());
      status = b.consults->IssueReport(caller, m).status();
      break;
    }
    case 5: {
      v1::ConsultMessage m;
      if (!Parse(data, size, &m)) break;
      b.Resolve(m.mutable_consult_id());
      status = b.consults->Post(caller, m).status();
      break;
    }
    case 6: {
      v1::ConvertToReferralRequest m;
      if (!Parse(data, size, &m)) break;
      b.Resolve(m.mutable_consult_id());
      status = b.consults->Convert(caller, m).status();
      break;
    }
    case 7: {
      v1::ResultRecord m;
      if (Parse(data, size, &m)) status = b.results->Publish(caller, m).status();
      break;
    }
    case 8: {
      v1::RecognizeRequest m;
      if (Parse(data, size, &m)) status = b.results->Recognize(caller, m).status();
      break;
    }
    case 9: {
      v1::Retest m;
      if (Parse(data, size, &m)) status = b.results->RecordRetest(caller, m).status();
      break;
    }
    case 10: {
      v1::ListReferralsRequest m;
      if (Parse(data, size, &m)) status = b.referrals->List(caller, m).status();
      break;
    }
    case 11: {
      v1::ListConsultsRequest m;
      if (Parse(data, size, &m)) status = b.consults->List(caller, m).status();
      break;
    }
    case 12: {
      v1::ListResultsRequest m;
      if (Parse(data, size, &m)) status = b.results->List(caller, m).status();
      break;
    }
    case 13: {
      v1::RetestSummaryRequest m;
      if (Parse(data, size, &m)) status = b.results->Summary(caller, m).status();
      break;
    }
  }
  // REFBROKER_FUZZ_VERBOSE=1: what each input got (to check that the seeds reach past validation).
  static const bool verbose = std::getenv("REFBROKER_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "op %d: %s\n", op, status.ToString().c_str());
  return 0;
}

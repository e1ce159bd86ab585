#include "client/sim/synthetic_referral.h"

#include <chrono>
#include <cstdio>

#include "broker/domain/identifiers.h"

namespace refsim {
namespace {

constexpr const char* kSurnames[] = {"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"};
constexpr const char* kGiven[] = {"秀英", "桂兰", "建国", "志强", "海燕", "国华",
                                  "丽娟", "明",   "磊",   "静",   "伟",   "芳"};
struct Dx {
  const char* code;
  const char* name;
  const char* reason;
  const char* department;
};
constexpr Dx kDiagnoses[] = {
    {"I21.9", "急性心肌梗死", "胸痛2小时，心电图ST段抬高，需急诊PCI", "内科"},
    {"I63.9", "脑梗死", "突发右侧肢体无力，需溶栓评估", "内科"},
    {"I10", "原发性高血压", "血压控制不佳，需调整方案", "全科"},
    {"E11.9", "2型糖尿病", "血糖控制差，需专科评估并发症", "全科"},
    {"J18.9", "肺炎", "发热咳嗽，胸片示片状影，需住院治疗", "内科"},
    {"K35.8", "急性阑尾炎", "转移性右下腹痛，需外科手术", "外科"},
    {"S72.0", "股骨颈骨折", "跌倒后髋部疼痛，不能行走，需手术", "外科"},
    {"O14.9", "妊娠期高血压", "孕32周，血压升高，需产科评估", "妇产科"},
};

}  // namespace

std::string SyntheticReferrals::ResidentId() {
  std::uniform_int_distribution<int> year(1940, 2020), month(1, 12), day(1, 28), seq(0, 999);
  char first17[18];
  std::snprintf(first17, sizeof first17, "411723%04d%02d%02d%03d", year(rng_), month(rng_),
                day(rng_), seq(rng_));
  std::string id(first17, 17);
  id.push_back(refbroker::domain::ResidentIdCheckChar(id));
  return id;
}

refbroker::v1::Consult SyntheticReferrals::MakeConsult(const std::string& clinic_code,
                                                       const std::string& target,
                                                       refbroker::v1::ConsultServiceType service,
                                                       const std::string& specialty,
                                                       refbroker::v1::Priority priority,
                                                       const std::string& client_request_id) {
  refbroker::v1::Referral r = Make(clinic_code, "", priority, client_request_id);
  refbroker::v1::Consult c;
  c.set_client_request_id(client_request_id);
  c.set_priority(priority);
  *c.mutable_patient() = r.patient();
  c.mutable_from()->set_institution(clinic_code);
  c.mutable_from()->set_department(r.from().department());
  *c.mutable_from()->mutable_doctor() = r.from().doctor();
  c.mutable_target()->set_institution(target);
  c.mutable_target()->set_service(service);
  c.mutable_target()->set_specialty(specialty);
  c.set_question(service == refbroker::v1::ECG_READING
                     ? "12导联心电图请判读：胸闷2小时，ST段是否抬高？"
                     : "请协助判读并给出诊疗建议。");
  c.set_clinical_summary(r.clinical_summary());
  *c.mutable_consent() = r.consent();
  return c;
}

refbroker::v1::Priority SyntheticReferrals::RandomPriority() {
  int p = std::uniform_int_distribution<int>(0, 99)(rng_);
  return p < 5 ? refbroker::v1::EMERGENCY : p < 25 ? refbroker::v1::URGENT : refbroker::v1::ROUTINE;
}

refbroker::v1::Referral SyntheticReferrals::Make(const std::string& clinic_code,
                                                 const std::string& to,
                                                 refbroker::v1::Priority priority,
                                                 const std::string& client_request_id) {
  const Dx& dx = kDiagnoses[std::uniform_int_distribution<size_t>(
      0, sizeof(kDiagnoses) / sizeof(kDiagnoses[0]) - 1)(rng_)];
  refbroker::v1::Referral r;
  r.set_client_request_id(client_request_id);
  r.set_direction(refbroker::v1::UP);
  r.set_priority(priority);
  auto* patient = r.mutable_patient();
  auto* id = patient->add_identifiers();
  id->set_type(refbroker::v1::RESIDENT_ID);
  id->set_value(ResidentId());
  id->set_issuer("公安部");
  patient->set_name(std::string(kSurnames[rng_() % 10]) + kGiven[rng_() % 12]);
  std::string phone = "13";  // a made-up mobile number
  for (int i = 0; i < 9; ++i) phone += static_cast<char>('0' + rng_() % 10);
  patient->set_phone(phone);
  int seq = (id->value()[14] - '0') * 100 + (id->value()[15] - '0') * 10 + (id->value()[16] - '0');
  patient->set_sex(seq % 2 == 1 ? refbroker::v1::MALE : refbroker::v1::FEMALE);
  patient->set_birth_date(id->value().substr(6, 4) + "-" + id->value().substr(10, 2) + "-" +
                          id->value().substr(12, 2));
  auto* from = r.mutable_from();
  from->set_institution(clinic_code);
  from->set_department(dx.department);
  from->mutable_doctor()->set_id("D" + std::to_string(1000 + rng_() % 50));
  from->mutable_doctor()->set_name(std::string(kSurnames[rng_() % 10]) + "医生");
  r.set_to_institution(to);
  r.set_reason(dx.reason);
  auto* d = r.add_diagnoses();
  d->set_code(dx.code);
  d->set_name(dx.name);
  d->set_code_system("ICD-10");
  r.set_clinical_summary(std::string("主诉及现病史：") + dx.reason + "。既往史无特殊。");
  auto* consent = r.mutable_consent();
  consent->set_given(true);
  auto now = std::chrono::system_clock::now();
  consent->mutable_obtained_at()->set_seconds(
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() - 60);
  consent->set_recorded_by(from->doctor().id());
  return r;
}

}  // namespace refsim

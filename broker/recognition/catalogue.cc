#include "broker/recognition/catalogue.h"

#include <toml++/toml.h>

#include <utility>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/domain/identifiers.h"

namespace refbroker::recognition {
namespace {

namespace v1 = refbroker::v1;
constexpr Micros kDay = 86400LL * 1000000;

int64_t DaysFromCivil(int y, unsigned m, unsigned d) {  // Howard Hinnant's algorithm
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

absl::StatusOr<v1::RecognitionScope> ParseScope(const std::string& s, const std::string& where) {
  v1::RecognitionScope scope;
  if (!v1::RecognitionScope_Parse(s, &scope) || scope == v1::RECOGNITION_SCOPE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".scope: unknown scope '", s, "'"));
  }
  return scope;
}

// A TOML integer, or `fallback` for anything else: toml++'s value_or<int64_t> would cast a float
// such as 2.5e33, which is undefined behaviour.
int64_t IntegerOr(toml::node_view<const toml::node> node, int64_t fallback) {
  const auto* i = node.as_integer();
  return i ? i->get() : fallback;
}

absl::StatusOr<CatalogueItem> ParseItem(const toml::table& t, const std::string& where) {
  CatalogueItem item;
  item.code = t["code"].value_or(std::string());
  item.name = t["name"].value_or(std::string());
  if (item.code.empty() || item.name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": code and name are required"));
  }
  std::string kind = t["kind"].value_or(std::string());
  if (!v1::ResultKind_Parse(kind, &item.kind) || item.kind == v1::RESULT_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".kind: unknown kind '", kind, "'"));
  }
  int64_t valid_days = IntegerOr(t["valid_days"], 0);
  if (valid_days < 1 || valid_days > 3650) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".valid_days: an integer 1..3650"));
  }
  item.valid_days = static_cast<int>(valid_days);
  ASSIGN_OR_RETURN(item.scope,
                   ParseScope(t["scope"].value_or(std::string("MEDICAL_COMMUNITY")), where));
  return item;
}

absl::StatusOr<Accreditation> ParseAccreditation(const toml::table& t, const std::string& where) {
  Accreditation a;
  a.institution = t["institution"].value_or(std::string());
  a.item = t["item"].value_or(std::string());
  if (auto s = domain::ValidateCreditCode(a.institution); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".institution: ", s.message()));
  }
  a.eqa_passed = t["eqa_passed"].value_or(false);
  a.eqa_org = t["eqa_org"].value_or(std::string());
  auto from = ChinaMidnight(t["valid_from"].value_or(std::string()));
  auto until = ChinaMidnight(t["valid_until"].value_or(std::string()));
  if (!from.ok() || !until.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": valid_from and valid_until must be YYYY-MM-DD"));
  }
  a.valid_from = *from;
  a.valid_until = *until + kDay;  // the last valid day is included
  if (a.valid_until <= a.valid_from) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": valid_until before valid_from"));
  }
  return a;
}

}  // namespace

absl::StatusOr<Micros> ChinaMidnight(const std::string& date) {
  if (!domain::IsCalendarDate(date)) return absl::InvalidArgumentError("not YYYY-MM-DD");
  int y = std::stoi(date.substr(0, 4)), m = std::stoi(date.substr(5, 2)),
      d = std::stoi(date.substr(8, 2));
  return DaysFromCivil(y, m, d) * kDay - 8LL * 3600 * 1000000;
}

absl::StatusOr<std::unique_ptr<Catalogue>> Catalogue::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("catalogue ", path, ": cannot be read"));
  std::ostringstream text;
  text << in.rdbuf();
  auto c = LoadString(text.str());
  if (!c.ok()) {
    return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  }
  return c;
}

absl::StatusOr<std::unique_ptr<Catalogue>> Catalogue::LoadString(const std::string& text) {
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("catalogue: ", std::string(e.description())));
  }
  std::unique_ptr<Catalogue> c(new Catalogue());
  c->version_ = IntegerOr(std::as_const(root)["version"], 0);
  if (c->version_ < 1) return absl::InvalidArgumentError("catalogue version: required, ≥ 1");
  c->name_ = root["name"].value_or(std::string());
  if (const toml::table* marks = root["marks"].as_table()) {
    for (const auto& [key, value] : *marks) {
      ASSIGN_OR_RETURN(auto scope, ParseScope(std::string(key.str()), "marks"));
      c->marks_[scope] = value.value_or(std::string());
    }
  }
  if (const toml::array* items = root["items"].as_array()) {
    for (size_t i = 0; i < items->size(); ++i) {
      const toml::table* t = (*items)[i].as_table();
      std::string where = absl::StrCat("items[", i, "]");
      if (t == nullptr) return absl::InvalidArgumentError(where + ": not a table");
      ASSIGN_OR_RETURN(CatalogueItem item, ParseItem(*t, where));
      if (!c->items_.emplace(item.code, item).second) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".code: listed twice"));
      }
    }
  }
  if (const toml::array* acc = root["accreditation"].as_array()) {
    for (size_t i = 0; i < acc->size(); ++i) {
      const toml::table* t = (*acc)[i].as_table();
      std::string where = absl::StrCat("accreditation[", i, "]");
      if (t == nullptr) return absl::InvalidArgumentError(where + ": not a table");
      ASSIGN_OR_RETURN(Accreditation a, ParseAccreditation(*t, where));
      c->accreditations_.push_back(std::move(a));
    }
  }
  return c;
}

const CatalogueItem* Catalogue::FindItem(const std::string& code) const {
  auto it = items_.find(code);
  return it == items_.end() ? nullptr : &it->second;
}

std::vector<const Accreditation*> Catalogue::FindAccreditations(const std::string& institution,
                                                                const std::string& item) const {
  std::vector<const Accreditation*> out;
  for (const Accreditation& a : accreditations_) {
    if (a.institution == institution && a.item == item) out.push_back(&a);
  }
  return out;
}

std::string Catalogue::Mark(v1::RecognitionScope scope) const {
  auto it = marks_.find(scope);
  if (it != marks_.end() && !it->second.empty()) return it->second;
  return v1::RecognitionScope_Name(scope) + " HR";
}

std::shared_ptr<const Catalogue> CatalogueHolder::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

absl::Status CatalogueHolder::Reload(const std::string& path) {
  ASSIGN_OR_RETURN(auto next, Catalogue::LoadFile(path));
  std::lock_guard<std::mutex> lock(mu_);
  if (current_ && next->version() <= current_->version()) {
    return absl::FailedPreconditionError(absl::StrCat("catalogue ", path, ": version ",
                                                      next->version(), " is not newer than ",
                                                      current_->version()));
  }
  current_ = std::move(next);
  return absl::OkStatus();
}

}  // namespace refbroker::recognition

#include "broker/auth/registry.h"

#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"
#include "broker/domain/identifiers.h"

namespace refbroker::auth {
namespace {

absl::StatusOr<Level> ParseLevel(const std::string& s, const std::string& where) {
  if (s == "TOWNSHIP") return Level::kTownship;
  if (s == "COUNTY") return Level::kCounty;
  if (s == "CITY") return Level::kCity;
  return absl::InvalidArgumentError(absl::StrCat(where, ".level: unknown level '", s, "'"));
}

absl::StatusOr<Role> ParseRole(const std::string& s, const std::string& where) {
  if (s == "clinic") return Role::kClinic;
  if (s == "hospital") return Role::kHospital;
  if (s == "center") return Role::kCenter;
  if (s == "operator") return Role::kOperator;
  if (s == "auditor") return Role::kAuditor;
  return absl::InvalidArgumentError(absl::StrCat(where, ".role: unknown role '", s, "'"));
}

std::vector<std::string> Strings(const toml::table& t, const char* key) {
  std::vector<std::string> out;
  if (const toml::array* arr = t[key].as_array()) {
    for (const auto& v : *arr) {
      if (auto s = v.value<std::string>()) out.push_back(*s);
    }
  }
  return out;
}

absl::StatusOr<std::string> Required(const toml::table& t, const char* key,
                                     const std::string& where) {
  auto v = t[key].value<std::string>();
  if (!v || v->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": required"));
  }
  return *v;
}

absl::StatusOr<Principal> ParseInstitution(const toml::table& t, const std::string& where) {
  Principal p;
  ASSIGN_OR_RETURN(p.id, Required(t, "code", where));
  if (auto s = domain::ValidateCreditCode(p.id); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".code: ", s.message()));
  }
  ASSIGN_OR_RETURN(p.name, Required(t, "name", where));
  ASSIGN_OR_RETURN(p.cert, Required(t, "cert", where));
  ASSIGN_OR_RETURN(p.alliance, Required(t, "alliance", where));
  ASSIGN_OR_RETURN(std::string role, Required(t, "role", where));
  ASSIGN_OR_RETURN(p.role, ParseRole(role, where));
  if (!p.IsInstitution()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".role: not an institution role"));
  }
  ASSIGN_OR_RETURN(std::string level, Required(t, "level", where));
  ASSIGN_OR_RETURN(p.level, ParseLevel(level, where));
  p.lead = t["lead"].value_or(false);
  p.specialties = Strings(t, "specialties");
  p.services = Strings(t, "services");
  p.partners = Strings(t, "partners");
  return p;
}

absl::StatusOr<Principal> ParsePerson(const toml::table& t, const std::string& where) {
  Principal p;
  ASSIGN_OR_RETURN(p.id, Required(t, "id", where));
  ASSIGN_OR_RETURN(p.name, Required(t, "name", where));
  ASSIGN_OR_RETURN(p.cert, Required(t, "cert", where));
  ASSIGN_OR_RETURN(p.alliance, Required(t, "alliance", where));
  ASSIGN_OR_RETURN(std::string role, Required(t, "role", where));
  ASSIGN_OR_RETURN(p.role, ParseRole(role, where));
  if (p.IsInstitution()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".role: must be operator or auditor"));
  }
  return p;
}

}  // namespace

const char* LevelName(Level level) {
  switch (level) {
    case Level::kTownship:
      return "TOWNSHIP";
    case Level::kCounty:
      return "COUNTY";
    case Level::kCity:
      return "CITY";
  }
  return "?";
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kClinic:
      return "clinic";
    case Role::kHospital:
      return "hospital";
    case Role::kCenter:
      return "center";
    case Role::kOperator:
      return "operator";
    case Role::kAuditor:
      return "auditor";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<Registry>> Registry::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("registry ", path, ": cannot be read"));
  std::ostringstream text;
  text << in.rdbuf();
  auto reg = LoadString(text.str());
  if (!reg.ok()) {
    return absl::Status(reg.status().code(), absl::StrCat(path, ": ", reg.status().message()));
  }
  return reg;
}

absl::StatusOr<std::unique_ptr<Registry>> Registry::LoadString(const std::string& toml_text) {
  toml::table root;
  try {
    root = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("registry: ", std::string(e.description())));
  }
  std::unique_ptr<Registry> reg(new Registry());
  if (const toml::array* arr = root["alliances"].as_array()) {
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::table* t = (*arr)[i].as_table();
      std::string where = absl::StrCat("alliances[", i, "]");
      if (!t) return absl::InvalidArgumentError(where + ": not a table");
      Alliance a;
      ASSIGN_OR_RETURN(a.id, Required(*t, "id", where));
      ASSIGN_OR_RETURN(a.name, Required(*t, "name", where));
      a.division = (*t)["division"].value_or(std::string());
      ASSIGN_OR_RETURN(a.default_receiver, Required(*t, "default_receiver", where));
      reg->alliances_.push_back(std::move(a));
    }
  }
  if (const toml::array* arr = root["institutions"].as_array()) {
    for (size_t i = 0; i < arr->size(); ++i) {
      std::string where = absl::StrCat("institutions[", i, "]");
      const toml::table* t = (*arr)[i].as_table();
      if (!t) return absl::InvalidArgumentError(where + ": not a table");
      ASSIGN_OR_RETURN(Principal p, ParseInstitution(*t, where));
      reg->principals_.push_back(std::move(p));
    }
  }
  if (const toml::array* arr = root["people"].as_array()) {
    for (size_t i = 0; i < arr->size(); ++i) {
      std::string where = absl::StrCat("people[", i, "]");
      const toml::table* t = (*arr)[i].as_table();
      if (!t) return absl::InvalidArgumentError(where + ": not a table");
      ASSIGN_OR_RETURN(Principal p, ParsePerson(*t, where));
      reg->principals_.push_back(std::move(p));
    }
  }
  RETURN_IF_ERROR(reg->Index());
  return reg;
}

absl::Status Registry::Index() {
  for (size_t i = 0; i < principals_.size(); ++i) {
    if (!by_id_.emplace(principals_[i].id, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("registry: principal '", principals_[i].id, "' is listed twice"));
    }
  }
  for (const Principal& p : principals_) {
    if (!FindAlliance(p.alliance)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "registry: principal '", p.id, "' names unknown alliance '", p.alliance, "'"));
    }
    for (const std::string& partner : p.partners) {
      if (!Find(partner)) {
        return absl::InvalidArgumentError(
            absl::StrCat("registry: principal '", p.id, "' names unknown partner '", partner, "'"));
      }
    }
  }
  for (const Alliance& a : alliances_) {
    const Principal* r = Find(a.default_receiver);
    if (!r || r->alliance != a.id || r->role != Role::kHospital) {
      return absl::InvalidArgumentError(absl::StrCat(
          "registry: alliance '", a.id, "' default_receiver is not one of its hospitals"));
    }
  }
  return absl::OkStatus();
}

const Principal* Registry::Find(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &principals_[it->second];
}

const Alliance* Registry::FindAlliance(const std::string& id) const {
  for (const Alliance& a : alliances_) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

}  // namespace refbroker::auth

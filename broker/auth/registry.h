#pragma once
// Registry: who each principal is. Loaded once from a TOML file (deploy/registry.toml) and
// immutable afterwards, so it is safe to share between threads without locking.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace refbroker::auth {

enum class Level { kTownship, kCounty, kCity };
enum class Role { kClinic, kHospital, kCenter, kOperator, kAuditor };

const char* LevelName(Level level);
const char* RoleName(Role role);

// A principal: an institution (keyed by its unified social credit code) or a person acting for
// an alliance (operator, auditor). The client certificate's CN is `id`.
struct Principal {
  std::string id;    // institution code, or operator/auditor id
  std::string name;  // display name, e.g. 平舆县人民医院
  std::string cert;  // certificate file stem used by certs/make-dev-certs.sh
  Role role = Role::kClinic;
  Level level = Level::kTownship;
  std::string alliance;
  bool lead = false;                     // lead hospital of its alliance
  std::vector<std::string> specialties;  // hospitals
  std::vector<std::string> services;     // resource centers: ECG_READING, IMAGING_READING, ...
  std::vector<std::string> partners;     // institutions outside the alliance it may refer to

  bool IsInstitution() const { return role != Role::kOperator && role != Role::kAuditor; }
};

struct Alliance {
  std::string id;
  std::string name;
  std::string division;          // GB/T 2260 code of the county
  std::string default_receiver;  // institution code of the default up-referral receiver
};

class Registry {
 public:
  // Parses and validates (credit-code checksums, unique ids, references). Errors name the entry.
  static absl::StatusOr<std::unique_ptr<Registry>> LoadFile(const std::string& path);
  static absl::StatusOr<std::unique_ptr<Registry>> LoadString(const std::string& toml_text);

  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  const Principal* Find(const std::string& id) const;
  const Alliance* FindAlliance(const std::string& id) const;
  const std::vector<Principal>& principals() const { return principals_; }
  const std::vector<Alliance>& alliances() const { return alliances_; }

 private:
  Registry() = default;
  absl::Status Index();

  std::vector<Principal> principals_;
  std::vector<Alliance> alliances_;
  std::map<std::string, size_t> by_id_;
};

}  // namespace refbroker::auth

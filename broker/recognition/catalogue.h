#pragma once
// Catalogue: the alliance's mutual-recognition catalogue (互认项目目录) and the EQA
// accreditation of each performing institution per item, loaded from versioned TOML
// (deploy/recognition.toml). Immutable once loaded; CatalogueHolder swaps in a new version on
// reload, and every verdict records the version it was made under.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "broker/common/clock.h"
#include "refbroker/v1/result.pb.h"

namespace refbroker::recognition {

struct CatalogueItem {
  std::string code;
  std::string name;
  refbroker::v1::ResultKind kind = refbroker::v1::RESULT_KIND_UNSPECIFIED;
  int valid_days = 0;
  refbroker::v1::RecognitionScope scope = refbroker::v1::MEDICAL_COMMUNITY;
};

// One EQA period of an institution for an item: [valid_from, valid_until).
struct Accreditation {
  std::string institution;
  std::string item;
  bool eqa_passed = false;
  Micros valid_from = 0;
  Micros valid_until = 0;
  std::string eqa_org;
};

class Catalogue {
 public:
  // Dates are "YYYY-MM-DD" in China Standard Time; valid_until is the last valid day.
  static absl::StatusOr<std::unique_ptr<Catalogue>> LoadFile(const std::string& path);
  static absl::StatusOr<std::unique_ptr<Catalogue>> LoadString(const std::string& text);

  int64_t version() const { return version_; }
  const std::string& name() const { return name_; }
  const CatalogueItem* FindItem(const std::string& code) const;
  // The accreditation periods of `institution` for `item`.
  std::vector<const Accreditation*> FindAccreditations(const std::string& institution,
                                                       const std::string& item) const;
  // The HR mark of a scope, e.g. "平舆县医共体HR".
  std::string Mark(refbroker::v1::RecognitionScope scope) const;

 private:
  Catalogue() = default;
  int64_t version_ = 0;
  std::string name_;
  std::map<std::string, CatalogueItem> items_;
  std::vector<Accreditation> accreditations_;
  std::map<int, std::string> marks_;
};

// The catalogue in force. Thread-safe.
class CatalogueHolder {
 public:
  explicit CatalogueHolder(std::shared_ptr<const Catalogue> initial)
      : current_(std::move(initial)) {}
  std::shared_ptr<const Catalogue> Get() const;
  // Loads `path`; keeps the current catalogue when it fails or is not newer.
  absl::Status Reload(const std::string& path);

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Catalogue> current_;  // guarded by mu_
};

// "YYYY-MM-DD" at 00:00 China Standard Time (UTC+8), in microseconds since the epoch.
absl::StatusOr<Micros> ChinaMidnight(const std::string& date);

}  // namespace refbroker::recognition

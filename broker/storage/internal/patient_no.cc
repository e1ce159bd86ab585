#include "broker/storage/internal/patient_no.h"

#include <openssl/sha.h>

namespace refbroker::storage::internal {

int64_t PatientNo(std::string_view patient_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(patient_key.data()), patient_key.size(), digest);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n = (n << 8) | digest[i];
  return static_cast<int64_t>(n);
}

namespace {

void PatientNoFunction(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  const unsigned char* text = sqlite3_value_text(argv[0]);
  int size = sqlite3_value_bytes(argv[0]);
  std::string_view key(text == nullptr ? "" : reinterpret_cast<const char*>(text),
                       static_cast<size_t>(size));
  sqlite3_result_int64(ctx, PatientNo(key));
}

}  // namespace

int RegisterPatientNoFunction(sqlite3* db) {
  return sqlite3_create_function(db, "patient_no", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                                 PatientNoFunction, nullptr, nullptr);
}

}  // namespace refbroker::storage::internal

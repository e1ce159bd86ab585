#include "broker/domain/identifiers.h"

#include <cctype>
#include <ctime>

namespace refbroker::domain {
namespace {

constexpr int kResidentWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
constexpr char kResidentCheck[] = "10X98765432";

constexpr std::string_view kCreditAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY";
constexpr int kCreditWeights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool ValidDate(int y, int m, int d) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  int max = kDays[m - 1] + (m == 2 && IsLeap(y) ? 1 : 0);
  return d <= max;
}

int Digits(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

int CurrentYear() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm.tm_year + 1900;
}

}  // namespace

char ResidentIdCheckChar(std::string_view first17) {
  int sum = 0;
  for (int i = 0; i < 17; ++i) sum += (first17[i] - '0') * kResidentWeights[i];
  return kResidentCheck[sum % 11];
}

absl::Status ValidateResidentId(std::string_view id, int current_year) {
  if (id.size() != 18) return absl::InvalidArgumentError("resident ID must have 18 characters");
  for (int i = 0; i < 17; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(id[i]))) {
      return absl::InvalidArgumentError("resident ID must start with 17 digits");
    }
  }
  char last = id[17];
  if (!std::isdigit(static_cast<unsigned char>(last)) && last != 'X') {
    return absl::InvalidArgumentError("resident ID check character must be a digit or 'X'");
  }
  int y = Digits(id.substr(6, 4)), m = Digits(id.substr(10, 2)), d = Digits(id.substr(12, 2));
  if (current_year == 0) current_year = CurrentYear();
  if (y < 1900 || y > current_year || !ValidDate(y, m, d)) {
    return absl::InvalidArgumentError("resident ID holds no valid birth date");
  }
  if (ResidentIdCheckChar(id) != last) {
    return absl::InvalidArgumentError("resident ID checksum does not match (GB 11643)");
  }
  return absl::OkStatus();
}

std::string ResidentIdBirthDate(std::string_view id) {
  std::string out;
  out.append(id.substr(6, 4)).append("-").append(id.substr(10, 2)).append("-");
  out.append(id.substr(12, 2));
  return out;
}

char CreditCodeCheckChar(std::string_view first17) {
  int sum = 0;
  for (int i = 0; i < 17; ++i) {
    auto pos = kCreditAlphabet.find(first17[i]);
    if (pos == std::string_view::npos) return '?';
    sum += static_cast<int>(pos) * kCreditWeights[i];
  }
  return kCreditAlphabet[(31 - sum % 31) % 31];
}

absl::Status ValidateCreditCode(std::string_view code) {
  if (code.size() != 18) {
    return absl::InvalidArgumentError("unified social credit code must have 18 characters");
  }
  for (char c : code) {
    if (kCreditAlphabet.find(c) == std::string_view::npos) {
      return absl::InvalidArgumentError(
          "unified social credit code has a character outside the GB 32100 alphabet");
    }
  }
  if (CreditCodeCheckChar(code) != code[17]) {
    return absl::InvalidArgumentError(
        "unified social credit code checksum does not match (GB 32100)");
  }
  return absl::OkStatus();
}

bool IsCalendarDate(std::string_view t) {
  if (t.size() != 10 || t[4] != '-' || t[7] != '-') return false;
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(t[i]))) return false;
  }
  return ValidDate(Digits(t.substr(0, 4)), Digits(t.substr(5, 2)), Digits(t.substr(8, 2)));
}

}  // namespace refbroker::domain

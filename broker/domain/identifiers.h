#pragma once
// Chinese national identifiers: resident ID numbers (GB 11643-1999) and unified social credit
// codes (GB 32100-2015). Pure functions, thread-safe.

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace refbroker::domain {

// OK when `id` is an 18-character resident ID: 17 digits + check char (0-9 or X), a real birth
// date (YYYYMMDD at positions 7-14, not in the future, not before 1900) and a matching GB 11643
// checksum. The error message says what is wrong without echoing the value.
absl::Status ValidateResidentId(std::string_view id, int current_year = 0);

// The GB 11643 check character for the first 17 digits of `id` (which must be digits).
char ResidentIdCheckChar(std::string_view first17);

// "YYYY-MM-DD" taken from a resident ID already validated.
std::string ResidentIdBirthDate(std::string_view id);

// OK when `code` is an 18-character unified social credit code over the GB 32100 alphabet
// (0-9 and A-Z without I, O, S, V, Z) with a matching check character.
absl::Status ValidateCreditCode(std::string_view code);

// The GB 32100 check character for the first 17 characters of `code`.
char CreditCodeCheckChar(std::string_view first17);

// True for a "YYYY-MM-DD" calendar date.
bool IsCalendarDate(std::string_view text);

}  // namespace refbroker::domain

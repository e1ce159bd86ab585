#pragma once
// Broker-assigned identifiers: "<prefix>-" + 26 characters of a ULID (48-bit millisecond time +
// 80 random bits from OpenSSL, Crockford base32), so ids sort by creation time and never repeat.

#include <string>

#include "broker/common/clock.h"

namespace refbroker {

std::string NewId(const std::string& prefix, Micros now);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(const std::string& data);

}  // namespace refbroker

#pragma once
// Broker-assigned identifiers: "<prefix>-" + 26 characters of a ULID (48-bit millisecond time +
// 80 random bits from OpenSSL, Crockford base32), so ids sort by creation time and never repeat.

#include <google/protobuf/message.h>

#include <string>

#include "broker/common/clock.h"

namespace refbroker {

std::string NewId(const std::string& prefix, Micros now);

// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(const std::string& data);

// Sha256Hex of `message`'s deterministic serialization: the same content always gives the same
// digest (used to tell a retried request from a reused client_request_id).
std::string MessageDigest(const google::protobuf::Message& message);

}  // namespace refbroker

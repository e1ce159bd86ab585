#include "broker/common/ids.h"

#include <openssl/rand.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/sha.h>

#include <cstdint>

namespace refbroker {

std::string NewId(const std::string& prefix, Micros now) {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  unsigned char bytes[16];
  uint64_t ms = static_cast<uint64_t>(now / 1000);
  for (int i = 5; i >= 0; --i) {
    bytes[i] = static_cast<unsigned char>(ms & 0xff);
    ms >>= 8;
  }
  if (RAND_bytes(bytes + 6, 10) != 1) {
    // Entropy unavailable is an environment failure we cannot work around safely.
    std::abort();
  }
  std::string out = prefix + "-";
  // 128 bits → 26 base32 characters, most significant first (the first carries 3 bits).
  char buf[26];
  for (int i = 0; i < 26; ++i) {
    int bit = 128 - 5 * (26 - i);  // index of the group's lowest bit counted from the top...
    int value = 0;
    for (int b = 0; b < 5; ++b) {
      int pos = bit + b;  // bit position from the most significant end (may be negative)
      if (pos < 0) continue;
      value = (value << 1) | ((bytes[pos / 8] >> (7 - pos % 8)) & 1);
    }
    buf[i] = kAlphabet[value];
  }
  out.append(buf, 26);
  return out;
}

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char c : digest) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string MessageDigest(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return Sha256Hex(bytes);
}

}  // namespace refbroker

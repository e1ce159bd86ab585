#pragma once
// ServerTls: the broker's TLS material — its certificate chain and key, the CA that signs the
// client certificates, and the certificate revocation list ([tls] crl) — loaded from the files
// the config names, checked, and reloaded on SIGHUP without dropping a connection.
//
// gRPC serves from a private copy of the material (a FileWatcherCertificateProvider over a 0700
// directory the broker owns, polled every second: $RUNTIME_DIRECTORY, else $TMPDIR, else /tmp,
// refbroker-tls-<pid>-XXXXXX). The copy goes when the broker stops; one left by a broker that
// was killed is removed by the next broker that starts (RemoveStaleTlsCopies). Reload() reads the
// configured files again and checks them (each PEM parses, the key matches the certificate, the CRL
// is signed by the CA) before it replaces the copy, key and certificate in one rename: a
// half-copied or mismatched file keeps the old material and is an error in the log. Established
// connections keep their TLS session; new handshakes use the new material within about a second.
//
// Revocation: a client certificate whose serial the CRL lists is refused at the handshake (a
// certificate verifier) and, on a connection opened before the CRL listed it, at its next call
// (Authenticator asks IsRevoked).

#include <openssl/x509.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/status/statusor.h"

namespace grpc {
class ServerCredentials;
namespace experimental {
class CertificateProviderInterface;
class CertificateVerifier;
}  // namespace experimental
}  // namespace grpc

namespace refbroker::tls {

struct TlsFiles {
  std::string ca, cert, key;  // required (PEM)
  std::string crl;            // optional (PEM): the CA's revocation list
};

// The checked content of the files.
struct TlsMaterial {
  std::string ca_pem, cert_pem, key_pem;
  std::set<std::string> revoked;  // serials the CRL lists (upper-case hex)
  std::string summary;            // for the log: certificate serial and expiry, CRL entries
};

// Reads and checks the files; errors name the config key ("tls.crl: not signed by tls.ca").
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files);

// Upper-case hex serial of a certificate ("" if it has none).
std::string SerialHex(const X509* cert);

// Removes from `base` the private copies (refbroker-tls-<pid>-*, this user's) of brokers that
// are no longer running: a broker killed, or crashed, before its ServerTls was destroyed left
// its key there. A copy whose process still runs is kept; one named by this process is not (a
// broker in a container has the same process id after every restart). Returns how many it
// removed.
// ServerTls::Create runs it before it makes its own copy.
int RemoveStaleTlsCopies(const std::string& base);

class ServerTls {
 public:
  static absl::StatusOr<std::unique_ptr<ServerTls>> Create(const TlsFiles& files);
  ~ServerTls();  // removes the private copy

  // For grpc::ServerBuilder::AddListeningPort: mTLS (client certificate required and verified
  // against the CA), TLS 1.2 or newer, the revocation verifier; follows Reload().
  std::shared_ptr<grpc::ServerCredentials> GrpcCredentials();

  // Reads the configured files again; replaces the material only if all of them check out.
  absl::Status Reload();

  // Whether the certificate (PEM, as gRPC's auth context holds it) is on the current CRL.
  bool IsRevokedPem(std::string_view cert_pem) const;
  bool IsRevokedSerial(const std::string& serial) const;

  std::shared_ptr<const TlsMaterial> material() const;

 private:
  explicit ServerTls(TlsFiles files) : files_(std::move(files)) {}
  absl::Status WriteCopy(const TlsMaterial& m);

  const TlsFiles files_;
  std::string dir_;        // the private copy gRPC reads
  std::mutex reload_mu_;   // Reload() one at a time
  mutable std::mutex mu_;  // material_
  std::shared_ptr<const TlsMaterial> material_;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider_;
  std::shared_ptr<grpc::experimental::CertificateVerifier> verifier_;
  // Serial of each client certificate seen (PEM → serial): parsing once per peer, not per call.
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::string> serial_of_pem_;
};

}  // namespace refbroker::tls

#include "broker/tls/server_tls.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/common/status_macros.h"

namespace refbroker::tls {
namespace {

// The private copy: one file with the certificate chain and the key (replaced in one rename, so
// that gRPC never reads a new certificate with an old key), and the CA.
constexpr char kIdentityFile[] = "identity.pem";
constexpr char kCaFile[] = "ca.pem";
constexpr unsigned kPollSeconds = 1;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CrlFree {
  void operator()(X509_CRL* c) const { X509_CRL_free(c); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("config ", key, ": cannot read ", path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::unique_ptr<BIO, BioFree> MemBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every certificate of a PEM bundle, in order.
std::vector<X509Ptr> Certificates(const std::string& pem) {
  std::vector<X509Ptr> out;
  auto bio = MemBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  return out;
}

std::string HexOf(const ASN1_INTEGER* serial) {
  if (serial == nullptr) return "";
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  if (bn == nullptr) return "";
  char* hex = BN_bn2hex(bn);
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

std::string DateOf(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

// Checks a client certificate's serial against the current CRL after gRPC verified its chain.
class RevocationVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit RevocationVerifier(const ServerTls* tls) : tls_(tls) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* sync_status) override {
    grpc::string_ref pem = request->peer_cert();
    if (tls_->IsRevokedPem(std::string_view(pem.data(), pem.size()))) {
      grpc::string_ref cn = request->common_name();
      spdlog::warn("refused a revoked client certificate cn={}",
                   std::string_view(cn.data(), cn.size()));
      *sync_status =
          grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "client certificate revoked (tls.crl)");
    } else {
      *sync_status = grpc::Status::OK;
    }
    return true;  // answered synchronously
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const ServerTls* tls_;
};

absl::Status WriteAtomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(absl::StrCat("tls: cannot write ", tmp));
    out << content;
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("tls: cannot write ", tmp));
  }
  ::chmod(tmp.c_str(), 0600);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("tls: cannot replace ", path));
  }
  return absl::OkStatus();
}

}  // namespace

std::string SerialHex(const X509* cert) { return cert ? HexOf(X509_get0_serialNumber(cert)) : ""; }

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const TlsFiles& files) {
  TlsMaterial m;
  ASSIGN_OR_RETURN(m.ca_pem, ReadFile(files.ca, "tls.ca"));
  ASSIGN_OR_RETURN(m.cert_pem, ReadFile(files.cert, "tls.cert"));
  ASSIGN_OR_RETURN(m.key_pem, ReadFile(files.key, "tls.key"));

  std::vector<X509Ptr> cas = Certificates(m.ca_pem);
  if (cas.empty()) return absl::InvalidArgumentError("config tls.ca: no PEM certificate in it");
  std::vector<X509Ptr> chain = Certificates(m.cert_pem);
  if (chain.empty()) return absl::InvalidArgumentError("config tls.cert: no PEM certificate in it");
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(
      PEM_read_bio_PrivateKey(MemBio(m.key_pem).get(), nullptr, nullptr, nullptr));
  if (!pkey) return absl::InvalidArgumentError("config tls.key: no PEM private key in it");
  if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
    return absl::InvalidArgumentError("config tls.key: does not match the certificate of tls.cert");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(chain.front().get())) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config tls.cert: expired on ", DateOf(X509_get0_notAfter(chain.front().get()))));
  }
  m.summary = absl::StrCat("certificate serial=", SerialHex(chain.front().get()),
                           " expires=", DateOf(X509_get0_notAfter(chain.front().get())),
                           " ca_certificates=", cas.size());

  if (!files.crl.empty()) {
    auto crl_pem = ReadFile(files.crl, "tls.crl");
    if (!crl_pem.ok()) return crl_pem.status();
    std::unique_ptr<X509_CRL, CrlFree> crl(
        PEM_read_bio_X509_CRL(MemBio(*crl_pem).get(), nullptr, nullptr, nullptr));
    if (!crl) return absl::InvalidArgumentError("config tls.crl: no PEM CRL in it");
    bool signed_by_ca = false;
    for (const auto& c : cas) {
      if (X509_NAME_cmp(X509_get_subject_name(c.get()), X509_CRL_get_issuer(crl.get())) == 0 &&
          X509_CRL_verify(crl.get(), X509_get0_pubkey(c.get())) == 1) {
        signed_by_ca = true;
      }
    }
    if (!signed_by_ca) {
      return absl::InvalidArgumentError("config tls.crl: not signed by a CA of tls.ca");
    }
    STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
    for (int i = 0; revoked != nullptr && i < sk_X509_REVOKED_num(revoked); ++i) {
      m.revoked.insert(HexOf(X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(revoked, i))));
    }
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
    bool stale = next != nullptr && X509_cmp_current_time(next) < 0;
    absl::StrAppend(&m.summary, " crl_entries=", m.revoked.size(),
                    " crl_next_update=", next ? DateOf(next) : "none",
                    stale ? " (past: issue a new CRL)" : "");
  }
  return m;
}

namespace {
// Private copies this process holds now (ServerTls objects alive).
std::atomic<int> own_copies{0};
}  // namespace

int RemoveStaleTlsCopies(const std::string& base) {
  static constexpr std::string_view kPrefix = "refbroker-tls-";
  int removed = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(base, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    // refbroker-tls-<pid>-XXXXXX: the process that made it.
    size_t digits_end = name.find('-', kPrefix.size());
    if (digits_end == std::string::npos || digits_end == kPrefix.size()) continue;
    std::string digits = name.substr(kPrefix.size(), digits_end - kPrefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
      continue;
    }
    // A copy named by this process while it holds none is stale too: a broker in a container
    // is process 1 after every restart.
    pid_t pid = static_cast<pid_t>(std::stol(digits));
    bool gone = pid > 0 && (pid == ::getpid() ? own_copies.load() == 0
                                              : ::kill(pid, 0) != 0 && errno == ESRCH);
    if (!gone) continue;  // running, or not ours to ask
    std::error_code rm;
    if (std::filesystem::remove_all(it->path(), rm) > 0 && !rm) removed++;
  }
  return removed;
}

absl::StatusOr<std::unique_ptr<ServerTls>> ServerTls::Create(const TlsFiles& files) {
  auto m = LoadTlsMaterial(files);
  if (!m.ok()) return m.status();
  std::unique_ptr<ServerTls> tls(new ServerTls(files));
  // A directory only the broker's user can read: $RUNTIME_DIRECTORY under systemd.
  const char* base = std::getenv("RUNTIME_DIRECTORY");
  if (base == nullptr || *base == '\0') base = std::getenv("TMPDIR");
  if (base == nullptr || *base == '\0') base = "/tmp";
  if (int stale = RemoveStaleTlsCopies(base); stale > 0) {
    spdlog::warn(
        "tls: removed {} private copies of the key left in {} by brokers that did not stop", stale,
        base);
  }
  std::string templ = absl::StrCat(base, "/refbroker-tls-", ::getpid(), "-XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("tls: cannot create a private directory in ", base));
  }
  tls->dir_ = buf.data();
  own_copies.fetch_add(1);
  absl::Status written = tls->WriteCopy(*m);
  if (!written.ok()) return written;
  tls->material_ = std::make_shared<const TlsMaterial>(std::move(*m));
  tls->provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls->dir_ + "/" + kIdentityFile, tls->dir_ + "/" + kIdentityFile, tls->dir_ + "/" + kCaFile,
      kPollSeconds);
  tls->verifier_ =
      grpc::experimental::ExternalCertificateVerifier::Create<RevocationVerifier>(tls.get());
  spdlog::info("tls: {}", tls->material_->summary);
  return tls;
}

ServerTls::~ServerTls() {
  provider_.reset();
  std::error_code ec;
  if (!dir_.empty()) {
    std::filesystem::remove_all(dir_, ec);
    own_copies.fetch_sub(1);
  }
}

absl::Status ServerTls::WriteCopy(const TlsMaterial& m) {
  // The CA first: a new CA with a certificate it signed arrives in that order.
  absl::Status s = WriteAtomically(dir_ + "/" + kCaFile, m.ca_pem);
  if (!s.ok()) return s;
  std::string identity = m.cert_pem;
  if (!identity.empty() && identity.back() != '\n') identity += '\n';
  identity += m.key_pem;
  return WriteAtomically(dir_ + "/" + kIdentityFile, identity);
}

std::shared_ptr<grpc::ServerCredentials> ServerTls::GrpcCredentials() {
  grpc::experimental::TlsServerCredentialsOptions options(provider_);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.set_certificate_verifier(verifier_);
  return grpc::experimental::TlsServerCredentials(options);
}

absl::Status ServerTls::Reload() {
  auto m = LoadTlsMaterial(files_);
  if (!m.ok()) {
    spdlog::error("tls reload refused, the current certificates and CRL stay: {}",
                  std::string(m.status().message()));
    return m.status();
  }
  // One reload at a time; mu_ (which every handshake's revocation check takes) only for the
  // swap, not across the file writes.
  std::lock_guard<std::mutex> reloading(reload_mu_);
  absl::Status written = WriteCopy(*m);
  if (!written.ok()) {
    spdlog::error("tls reload failed, the current certificates and CRL stay: {}",
                  std::string(written.message()));
    return written;
  }
  auto loaded = std::make_shared<const TlsMaterial>(std::move(*m));
  spdlog::info("tls reloaded: {}", loaded->summary);
  std::lock_guard<std::mutex> lock(mu_);
  material_ = std::move(loaded);
  return absl::OkStatus();
}

std::shared_ptr<const TlsMaterial> ServerTls::material() const {
  std::lock_guard<std::mutex> lock(mu_);
  return material_;
}

bool ServerTls::IsRevokedSerial(const std::string& serial) const {
  auto m = material();
  return !serial.empty() && m->revoked.count(serial) > 0;
}

bool ServerTls::IsRevokedPem(std::string_view cert_pem) const {
  if (material()->revoked.empty()) return false;
  std::string serial;
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = serial_of_pem_.find(std::string(cert_pem));
    if (it != serial_of_pem_.end()) serial = it->second;
  }
  if (serial.empty()) {
    std::string pem(cert_pem);
    std::vector<X509Ptr> certs = Certificates(pem);
    if (certs.empty()) return false;  // gRPC verified it; nothing to look up
    serial = SerialHex(certs.front().get());
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (serial_of_pem_.size() >= 4096) serial_of_pem_.clear();
    serial_of_pem_.emplace(std::move(pem), serial);
  }
  return IsRevokedSerial(serial);
}

}  // namespace refbroker::tls

# Shared by scripts/demo, scripts/test and scripts/build. Source it; do not run it.
# Installs the Debian 12 packages refbroker needs (idempotent: apt-get runs only when a package
# is missing) and builds with CMake presets.

REFBROKER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

REFBROKER_BUILD_PACKAGES=(
  cmake ninja-build g++ pkg-config openssl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libboost-dev libssl-dev libsqlite3-dev libpq-dev
  libspdlog-dev libtomlplusplus-dev libcli11-dev prometheus-cpp-dev libsystemd-dev libjemalloc-dev
)
# The status page's browser test drives headless Chromium (client certificate from an NSS
# database made with libnss3-tools); curl checks refusals; systemd-analyze verifies the unit.
# The asan build uses Clang for libFuzzer (tests/fuzz): clang, its runtimes, llvm-symbolizer.
REFBROKER_TEST_PACKAGES=(libgtest-dev libgmock-dev chromium libnss3-tools curl systemd postgresql-15
  clang libclang-rt-14-dev llvm)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing: ${missing[*]}"
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Chromium asks which client certificate to present unless a policy picks one: the browser
# test's certificate is selected automatically for the loopback address only.
ensure_browser_policy() {
  local dir=/etc/chromium/policies/managed file=/etc/chromium/policies/managed/refbroker-tests.json
  [[ -f "$file" ]] && return 0
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo mkdir -p "$dir"
  echo '{"AutoSelectCertificateForUrls": ["{\"pattern\":\"https://127.0.0.1\",\"filter\":{}}"]}' |
    $sudo tee "$file" >/dev/null
}

# build PRESET [targets...]: configure once, then build in parallel.
build() {
  local preset="$1"; shift
  cd "$REFBROKER_ROOT"
  if [[ ! -f "build/$preset/build.ninja" ]]; then
    log "configuring ($preset)"
    cmake --preset "$preset" >/dev/null
  fi
  log "building ($preset)"
  cmake --build "build/$preset" --parallel "$(nproc)" ${1:+--target "$@"}
}

#!/usr/bin/env bash
# Makes a development PKI for refbroker: a CA, a broker certificate for localhost/127.0.0.1, and
# one client certificate per principal of the registry (subject CN = institution code or person
# id; file stem = the principal's `cert` key). Keys are generated here and never committed.
#
#   certs/make-dev-certs.sh [--registry deploy/registry.toml] [--out certs/dev] [--test-extras]
#
# --test-extras also makes, for the test suite: "stranger" (signed by the dev CA, CN in no
# registry) and a second, foreign CA with a client certificate "foreign-client" whose CN is a
# registered clinic. Idempotent: an existing CA is reused unless --force is given.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
registry="$here/../deploy/registry.toml"
out="$here/dev"
extras=0
force=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --registry) registry="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --test-extras) extras=1; shift ;;
    --force) force=1; shift ;;
    *) echo "usage: $0 [--registry FILE] [--out DIR] [--test-extras] [--force]" >&2; exit 2 ;;
  esac
done

command -v openssl >/dev/null || { echo "openssl is required (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$out"
umask 077
days=825

make_ca() {  # name subject
  local name="$1" subject="$2"
  if [[ $force -eq 1 || ! -s "$out/$name.crt" ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
      -days 3650 -subj "$subject" -keyout "$out/$name.key" -out "$out/$name.crt" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      2>/dev/null
  fi
}

issue() {  # ca stem cn ext-kind
  local ca="$1" stem="$2" cn="$3" kind="$4" ext
  if [[ $force -eq 0 && -s "$out/$stem.crt" && "$out/$stem.crt" -nt "$out/$ca.crt" ]]; then return; fi
  ext="$(mktemp)"
  if [[ "$kind" == server ]]; then
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' >"$ext"
  else
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$ext"
  fi
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -subj "/O=refbroker dev/CN=$cn" -keyout "$out/$stem.key" -out "$out/$stem.csr" 2>/dev/null
  openssl x509 -req -in "$out/$stem.csr" -CA "$out/$ca.crt" -CAkey "$out/$ca.key" \
    -CAcreateserial -days "$days" -sha256 -extfile "$ext" -out "$out/$stem.crt" 2>/dev/null
  rm -f "$out/$stem.csr" "$ext"
}

make_ca ca "/O=refbroker dev/CN=refbroker development CA"
issue ca broker "localhost" server

# Principals: each [[institutions]] has code + cert, each [[people]] has id + cert.
count=0
while read -r cn stem; do
  issue ca "$stem" "$cn" client
  count=$((count + 1))
done < <(awk '
  /^\[\[/ { if (cn != "" && stem != "") print cn, stem; cn = ""; stem = ""; next }
  /^[[:space:]]*(code|id)[[:space:]]*=/ && cn == "" { v = $0; sub(/^[^"]*"/, "", v); sub(/".*/, "", v); cn = v }
  /^[[:space:]]*cert[[:space:]]*=/ { v = $0; sub(/^[^"]*"/, "", v); sub(/".*/, "", v); stem = v }
  END { if (cn != "" && stem != "") print cn, stem }' "$registry" | grep -v '^pingyu ' || true)

if [[ $extras -eq 1 ]]; then
  issue ca stranger "91410000MA0000000X-not-registered" client
  make_ca foreign-ca "/O=somewhere else/CN=foreign CA"
  first_clinic="$(awk '/role = "clinic"/ { print prev; exit } /code =/ { v = $0; sub(/^[^"]*"/, "", v); sub(/".*/, "", v); prev = v }' "$registry")"
  issue foreign-ca foreign-client "$first_clinic" client
fi
chmod 600 "$out"/*.key
echo "certs: $count principal certificates in $out (CA: $out/ca.crt)"

#!/usr/bin/env bash
# Revokes client certificates issued by a CA of this directory layout (certs/make-dev-certs.sh)
# and writes the certificate revocation list the broker reads ([tls] crl = ".../crl.pem"):
#
#   certs/revoke-cert.sh [--dir certs/dev] [--days 30] [STEM...]
#
# STEM is a certificate's file stem (e.g. guhuai-thc for guhuai-thc.crt). With no STEM the CRL
# is issued again with the same entries: a CRL has a next-update date, issue it before then.
# The CA's revocation database is DIR/crl-index.txt. Afterwards, `systemctl reload refbroker`
# (SIGHUP) makes the broker refuse those certificates, on new connections and on the next call
# of a connection already open, without dropping anyone else.
set -euo pipefail

dir="$(cd "$(dirname "$0")" && pwd)/dev"
days=30
stems=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    -*) echo "usage: $0 [--dir DIR] [--days N] [STEM...]" >&2; exit 2 ;;
    *) stems+=("$1"); shift ;;
  esac
done
[[ -s "$dir/ca.crt" && -s "$dir/ca.key" ]] || { echo "$dir: no ca.crt/ca.key" >&2; exit 1; }

umask 077
touch "$dir/crl-index.txt"
[[ -s "$dir/crl-number" ]] || echo 1000 >"$dir/crl-number"
cnf="$(mktemp)"
trap 'rm -f "$cnf"' EXIT
cat >"$cnf" <<CNF
[ ca ]
default_ca = refbroker
[ refbroker ]
database = $dir/crl-index.txt
crlnumber = $dir/crl-number
default_md = sha256
default_crl_days = $days
unique_subject = no
CNF
for stem in "${stems[@]}"; do
  [[ -s "$dir/$stem.crt" ]] || { echo "$dir/$stem.crt: no such certificate" >&2; exit 1; }
  if ! openssl ca -config "$cnf" -keyfile "$dir/ca.key" -cert "$dir/ca.crt" \
      -revoke "$dir/$stem.crt" 2>"$cnf.err"; then
    grep -q "Already revoked" "$cnf.err" || { cat "$cnf.err" >&2; rm -f "$cnf.err"; exit 1; }
  fi
  rm -f "$cnf.err"
  echo "revoked: $stem ($(openssl x509 -in "$dir/$stem.crt" -noout -serial))"
done
openssl ca -config "$cnf" -keyfile "$dir/ca.key" -cert "$dir/ca.crt" -gencrl \
  -out "$dir/crl.pem.tmp" 2>/dev/null
chmod 644 "$dir/crl.pem.tmp"
mv "$dir/crl.pem.tmp" "$dir/crl.pem"
echo "CRL: $dir/crl.pem ($(grep -c '^R' "$dir/crl-index.txt") revoked, next update in $days days)"

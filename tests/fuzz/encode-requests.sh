#!/bin/sh
# encode-requests.sh PROTO_DIR SEED_DIR OUT_DIR
# Turns the request seeds (corpus/requests/OP-CALLER-TYPE-what.textproto, readable in review)
# into request_fuzz's input: the byte OP, the byte CALLER, then the TYPE message in wire format.
set -eu
proto_dir="$1" seeds="$2" out="$3"
rm -rf "$out"
mkdir -p "$out"
for f in "$seeds"/*.textproto; do
  name=$(basename "$f" .textproto)
  op=$(echo "$name" | cut -d- -f1)
  caller=$(echo "$name" | cut -d- -f2)
  type=$(echo "$name" | cut -d- -f3)
  printf "\\$(printf %03o "$(expr "$op" + 0)")\\$(printf %03o "$(expr "$caller" + 0)")" > "$out/$name"
  grep -v '^#' "$f" | protoc -I "$proto_dir" --encode="$type" "$proto_dir"/refbroker/v1/*.proto \
    >> "$out/$name"
done

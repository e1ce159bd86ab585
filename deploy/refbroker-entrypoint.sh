#!/bin/sh
# The broker's container entrypoint: the PostgreSQL password from the secret file (if there is
# one) goes to libpq as PGPASSWORD, never into the config file or the command line.
#   REFBROKER_DB_PASSWORD_FILE  the secret (default /run/secrets/postgres_password)
#   REFBROKER_CONFIG            the config (default /etc/refbroker/refbroker.toml)
#   REFBROKER_BIN               the binary (default /usr/local/bin/refbroker)
set -eu
password_file="${REFBROKER_DB_PASSWORD_FILE:-/run/secrets/postgres_password}"
if [ -r "$password_file" ]; then
  PGPASSWORD="$(cat "$password_file")"
  export PGPASSWORD
fi
exec "${REFBROKER_BIN:-/usr/local/bin/refbroker}" -c "${REFBROKER_CONFIG:-/etc/refbroker/refbroker.toml}" "$@"

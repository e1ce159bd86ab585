#!/bin/sh
# The broker's container entrypoint: the PostgreSQL password from the secret (if mounted) goes to
# libpq as PGPASSWORD, never into the config file or the command line.
set -eu
if [ -r /run/secrets/postgres_password ]; then
  PGPASSWORD="$(cat /run/secrets/postgres_password)"
  export PGPASSWORD
fi
exec /usr/local/bin/refbroker -c /etc/refbroker/refbroker.toml "$@"

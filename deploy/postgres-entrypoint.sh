#!/bin/sh
# Initializes the cluster on first start (role and database "refbroker", password from the
# secret file, scram-sha-256 over the network), then runs the server with synchronous_commit and
# fsync on: nothing acknowledged may be lost.
#   POSTGRES_PASSWORD_FILE  the secret (default /run/secrets/postgres_password)
#   PGDATA, PGPORT          as PostgreSQL reads them (the image sets PGDATA; the port is 5432)
set -eu
password_file="${POSTGRES_PASSWORD_FILE:-/run/secrets/postgres_password}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -s "$password_file" ] || { echo "postgres-entrypoint: no password in $password_file" >&2; exit 1; }
  initdb --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pw="$(cat "$password_file")"
  postgres --single -D "$PGDATA" postgres >/dev/null <<SQL
CREATE ROLE refbroker LOGIN PASSWORD '$pw';
CREATE DATABASE refbroker OWNER refbroker;
SQL
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c synchronous_commit=on -c fsync=on

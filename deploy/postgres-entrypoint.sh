#!/bin/sh
# Initializes the cluster on first start (role and database "refbroker", password from
# /run/secrets/postgres_password, scram-sha-256 over the network), then runs the server with
# synchronous_commit and fsync on: nothing acknowledged may be lost.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pw="$(cat /run/secrets/postgres_password)"
  postgres --single -D "$PGDATA" postgres <<SQL
CREATE ROLE refbroker LOGIN PASSWORD '$pw';
CREATE DATABASE refbroker OWNER refbroker;
SQL
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c synchronous_commit=on -c fsync=on

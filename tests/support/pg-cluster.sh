#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for the tests: initdb in a temporary directory, a server on
# a free loopback port, a database "refbroker" for the tests, and a stop that removes it all.
#   pg-cluster.sh start STATE_FILE    writes "conninfo" and the data directory into STATE_FILE
#   pg-cluster.sh stop STATE_FILE
#   pg-cluster.sh down STATE_FILE     the server crashes (immediate stop: recovery at the next start)
#   pg-cluster.sh up STATE_FILE       and starts again on the same port
# The tests run as root, and PostgreSQL refuses to run as root: then the cluster belongs to the
# unprivileged "postgres" user the Debian package creates.
set -euo pipefail
action="$1" state="$2"
bindir=/usr/lib/postgresql/15/bin
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop() {
  [[ -f "$state" ]] || return 0
  local dir
  dir=$(sed -n 's/^dir=//p' "$state")
  if [[ -n "$dir" && -d "$dir/data" ]]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [[ -n "$dir" ]] && rm -rf "$dir"
  rm -f "$state"
}

pgctl() {
  local dir
  dir=$(sed -n 's/^dir=//p' "$state")
  as_owner "$bindir/pg_ctl" -D "$dir/data" "$@"
}

case "$action" in
  down) pgctl -m immediate -w stop >/dev/null ;;
  up) pgctl -l "$(sed -n 's/^dir=//p' "$state")/server.log" -w -t 60 start >/dev/null ;;
  start)
    stop
    [[ -x "$bindir/initdb" ]] || { echo "PostgreSQL 15 server is not installed (apt-get install postgresql-15)" >&2; exit 1; }
    dir=$(mktemp -d /tmp/refbroker-pg.XXXXXX)
    chmod 755 "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    port=""
    for p in $(seq 55432 55632); do
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
    done
    [[ -n "$port" ]] || { echo "no free loopback port in 55432-55632" >&2; exit 1; }
    as_owner "$bindir/initdb" -D "$dir/data" -U refbroker -A trust --locale=C -E UTF8 >"$dir/initdb.log"
    # fsync and synchronous_commit stay on: the tests check what an acknowledgement means.
    cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 64MB
CONF
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U refbroker refbroker
    printf 'dir=%s\nconninfo=host=127.0.0.1 port=%s dbname=refbroker user=refbroker\n' "$dir" "$port" >"$state"
    echo "PostgreSQL test cluster on 127.0.0.1:$port ($dir)"
    ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop|down|up STATE_FILE" >&2; exit 2 ;;
esac

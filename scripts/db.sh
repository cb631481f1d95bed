#!/usr/bin/env bash
# Manages this checkout's throwaway PostgreSQL 15 cluster.
#
#   scripts/db.sh start | stop | status | env | url | wipe
#
# The cluster lives inside the checkout (.pgdata, git-ignored) when the OS user that
# runs it can reach the checkout, else in a per-checkout folder under /tmp. As root it is
# run as the `postgres` OS user (PostgreSQL refuses to run as root). It listens on
# 127.0.0.1 only, on a port derived from the checkout's path (override: AUTODOCTOR_PORT),
# with pg_cron preloaded. Every step is idempotent.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
HASH=$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)
PORT=${AUTODOCTOR_PORT:-$((54000 + HASH % 900))}
DBNAME=${AUTODOCTOR_DBNAME:-autodoctor}

if [ "$(id -u)" = 0 ]; then
    RUN_AS=postgres
    as_owner() { runuser -u postgres -- "$@"; }
else
    RUN_AS=$(id -un)
    as_owner() { "$@"; }
fi

# Where the cluster's files go: the checkout when the owner can enter it, else /tmp.
if as_owner test -x "$ROOT" -a -r "$ROOT" 2>/dev/null && { [ "$RUN_AS" != postgres ] || runuser -u postgres -- test -x "$ROOT"; }; then
    BASE="$ROOT/.pgdata"
else
    BASE="/tmp/autodoctor-db-$HASH"
fi
DATA="$BASE/data"
LOG="$BASE/postgresql.log"

psql_admin() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }

is_running() { [ -f "$DATA/postmaster.pid" ] && as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

init() {
    [ -f "$DATA/PG_VERSION" ] && return 0
    echo "db: creating a throwaway cluster in $BASE (port $PORT, run by $RUN_AS)"
    mkdir -p "$BASE"
    [ "$RUN_AS" = postgres ] && [ "$(id -u)" = 0 ] && chown postgres: "$BASE"
    as_owner "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$BASE/initdb.log" 2>&1 \
        || { cat "$BASE/initdb.log" >&2; exit 1; }
    as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<CONF
# --- autodoctor-db throwaway cluster ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
max_connections = 300
shared_buffers = 256MB
shared_preload_libraries = 'pg_cron'
cron.database_name = '$DBNAME'
cron.use_background_workers = on
max_worker_processes = 32
log_min_messages = warning
log_min_error_statement = panic
CONF
}

start() {
    init
    if is_running; then return 0; fi
    as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null \
        || { tail -n 30 "$LOG" >&2; exit 1; }
    if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'" | grep -q 1; then
        psql_admin -d postgres -c "CREATE DATABASE $DBNAME"
    fi
    # The login role applications use, as PostgREST's `authenticator`: it can only
    # become anon, authenticated or service_role (granted once deploy created them).
    psql_admin -d postgres -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN
            CREATE ROLE authenticator LOGIN NOINHERIT;
        END IF; END \$\$"
    echo "db: running on 127.0.0.1:$PORT (data in $DATA)"
}

stop() {
    if is_running; then
        as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
        echo "db: stopped"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if is_running; then echo "running on 127.0.0.1:$PORT ($DATA)"; else echo "stopped ($DATA)"; exit 3; fi ;;
    port) echo "$PORT" ;;
    env) printf 'PGHOST=127.0.0.1\nPGPORT=%s\nPGUSER=postgres\nPGDATABASE=%s\n' "$PORT" "$DBNAME" ;;
    wipe) stop; rm -rf "$BASE"; echo "db: removed $BASE" ;;
    *) echo "usage: $0 start|stop|status|port|env|wipe" >&2; exit 2 ;;
esac

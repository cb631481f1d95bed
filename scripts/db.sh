#!/usr/bin/env bash
# Manages this checkout's throwaway PostgreSQL 15 cluster.
#
#   scripts/db.sh start | stop | status | env | port | wipe
#   scripts/db.sh pooler-start | pooler-stop | pooler-port      pgbouncer, transaction pooling
#   scripts/db.sh pooler-config DIR | pooler-users              its pgbouncer.ini (files in DIR), userlist.txt
#   scripts/db.sh replica-start | replica-stop | replica-port    a streaming hot standby
#
# The cluster lives inside the checkout (.pgdata, git-ignored) when the OS user that
# runs it can reach the checkout, else in a per-checkout folder under /tmp. As root it is
# run as the `postgres` OS user (PostgreSQL refuses to run as root). It listens on
# 127.0.0.1 only, on a port derived from the checkout's path (override: AUTODOCTOR_PORT),
# with pg_cron preloaded. Every step is idempotent. The cluster, its pgbouncer and its
# replica are made, started and stopped by scripts/cluster.sh, as every throwaway cluster
# of the project is; this script adds the checkout's ports and folders, the databases,
# pg_cron and the API roles.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# shellcheck source=scripts/cluster.sh
. "$ROOT/scripts/cluster.sh"
HASH=$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)
PORT=${AUTODOCTOR_PORT:-$((54000 + HASH % 900))}
DBNAME=${AUTODOCTOR_DBNAME:-autodoctor}
# pg_cron serves one database per cluster: a test database (tests/python/operations/test_pg_cron.py
# creates, deploys and drops it), so that no test ever writes into the demo's database.
CRON_DB=autodoctor_cron_test

RUN_AS=$CLUSTER_OWNER  # as_owner: from scripts/cluster.sh

# Where the cluster's files go: the checkout when the owner can enter it, else /tmp.
if as_owner test -x "$ROOT" -a -r "$ROOT" 2>/dev/null && { [ "$RUN_AS" != postgres ] || runuser -u postgres -- test -x "$ROOT"; }; then
    BASE="$ROOT/.pgdata"
else
    BASE="/tmp/autodoctor-db-$HASH"
fi
DATA="$BASE/data"
LOG="$BASE/postgresql.log"
POOLER_PORT=${AUTODOCTOR_POOLER_PORT:-$((PORT + 1000))}
POOLER_DIR="$BASE/pgbouncer"
POOLER_SIZE=${AUTODOCTOR_POOLER_SIZE:-$((2 * $(nproc)))}
REPLICA_PORT=${AUTODOCTOR_REPLICA_PORT:-$((PORT + 2000))}
REPLICA_DATA="$BASE/replica"
REPLICA_LOG="$BASE/replica.log"

psql_admin() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }

is_running() { cluster_running "$DATA"; }

init() {
    [ -f "$DATA/PG_VERSION" ] && return 0
    echo "db: creating a throwaway cluster in $BASE (port $PORT, run by $RUN_AS)"
    cluster_own_dir "$BASE"
    cluster_init "$DATA" "$PORT" "$BASE/initdb.log" <<CONF
# --- autodoctor-db throwaway cluster ---
max_connections = 300
shared_buffers = 256MB
shared_preload_libraries = 'pg_cron'
cron.database_name = '$CRON_DB'
cron.use_background_workers = on
max_worker_processes = 32
log_min_messages = warning
log_min_error_statement = panic
CONF
}

start() {
    init
    local started=
    if ! is_running; then
        cluster_start "$DATA" "$LOG"
        started=1
    fi
    if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'" | grep -q 1; then
        psql_admin -d postgres -c "CREATE DATABASE $DBNAME"
    fi
    # pg_cron's database must exist for its launcher (which, once its database is dropped,
    # exits for good: then only a restart brings pg_cron back).
    if ! psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$CRON_DB'" | grep -q 1; then
        psql_admin -d postgres -c "CREATE DATABASE $CRON_DB"
    fi
    if [ "$(psql_admin -d postgres -tAc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'")" = 0 ]; then
        sleep 2  # a launcher waiting for its new database connects within a second
        if [ "$(psql_admin -d postgres -tAc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher'")" = 0 ]; then
            echo "db: pg_cron's launcher is not running: restarting the cluster"
            cluster_restart "$DATA" "$LOG"
        fi
    fi
    # Marks the demo's database as throwaway: `autodoctor-db demo` writes fake users and
    # requests only into such a database (elsewhere it needs --yes).
    psql_admin -d postgres -c "ALTER DATABASE $DBNAME SET autodoctor.throwaway = 'on'"
    # Clusters made before pg_cron served the test database: point it there (a restart).
    if [ "$(psql_admin -d postgres -tAc "SHOW cron.database_name")" != "$CRON_DB" ]; then
        psql_admin -d postgres -c "ALTER SYSTEM SET cron.database_name = '$CRON_DB'"
        cluster_restart "$DATA" "$LOG"
    fi
    # The API roles as a Supabase project has them before the package arrives (so the
    # package's deploys and reverts in this cluster's databases never create or drop
    # them), and the login role applications use, as PostgREST's `authenticator`: it can
    # only become anon, authenticated or service_role.
    psql_admin -d postgres -c "DO \$\$
        DECLARE r text;
        BEGIN
            FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
                    EXECUTE format('CREATE ROLE %I NOLOGIN', r);
                END IF;
            END LOOP;
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN
                CREATE ROLE authenticator LOGIN NOINHERIT;
            END IF;
        END \$\$" -c "SET client_min_messages = warning" -c "GRANT anon, authenticated, service_role TO authenticator"
    [ -z "$started" ] || echo "db: running on 127.0.0.1:$PORT (data in $DATA)"
}

stop() {
    if is_running; then
        cluster_stop "$DATA" fast
        echo "db: stopped"
    fi
}

pooler_running() { cluster_pooler_running "$POOLER_DIR"; }

# The pgbouncer configuration, for files in directory $1: transaction pooling in front of
# the cluster's every database, a pool of POOLER_SIZE server connections (scripts/cluster.sh
# writes it; the benchmark's pgbouncer is started from there too).
pooler_config() { cluster_pooler_config "$1" "$PORT" "$POOLER_PORT" "$POOLER_SIZE"; }

# Who may log in through pgbouncer (auth_type = trust still needs the names).
pooler_users() { cluster_pooler_users; }

# pgbouncer in transaction-pooling mode in front of the cluster, on its own port, as the
# cluster's OS user: every database of the cluster, a pool of ~2x cores server connections.
pooler_start() {
    start
    if pooler_running; then return 0; fi
    command -v pgbouncer >/dev/null || { echo "db: pgbouncer is not installed (apt-get install pgbouncer)" >&2; exit 1; }
    cluster_pooler_start "$POOLER_DIR" "$PORT" "$POOLER_PORT" "$POOLER_SIZE"
    echo "db: pgbouncer (transaction pooling, $POOLER_SIZE server connections) on 127.0.0.1:$POOLER_PORT"
}

pooler_stop() {
    if pooler_running; then
        cluster_pooler_stop "$POOLER_DIR"
        echo "db: pgbouncer stopped"
    fi
}

replica_running() { cluster_running "$REPLICA_DATA"; }

# A streaming hot standby of the cluster: pg_basebackup with a replication slot, its own
# port, hot_standby on. Read-only: a write there fails with 25006.
replica_start() {
    start
    if replica_running; then return 0; fi
    if [ ! -f "$REPLICA_DATA/PG_VERSION" ]; then
        echo "db: creating a streaming replica in $REPLICA_DATA (port $REPLICA_PORT)"
        cluster_standby_create "$PORT" "$REPLICA_DATA" "$REPLICA_PORT" autodoctor_replica
    fi
    cluster_start "$REPLICA_DATA" "$REPLICA_LOG"
    echo "db: hot standby on 127.0.0.1:$REPLICA_PORT"
}

replica_stop() {
    if replica_running; then
        cluster_stop "$REPLICA_DATA" fast
        echo "db: replica stopped"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) pooler_stop; replica_stop; stop ;;
    pooler-start) pooler_start ;;
    pooler-stop) pooler_stop ;;
    pooler-port) echo "$POOLER_PORT" ;;
    pooler-config) pooler_config "${2:?usage: $0 pooler-config DIR}" ;;
    pooler-users) pooler_users ;;
    replica-start) replica_start ;;
    replica-stop) replica_stop ;;
    replica-port) echo "$REPLICA_PORT" ;;
    status) if is_running; then echo "running on 127.0.0.1:$PORT ($DATA)"; else echo "stopped ($DATA)"; exit 3; fi ;;
    port) echo "$PORT" ;;
    env) printf 'PGHOST=127.0.0.1\nPGPORT=%s\nPGUSER=postgres\nPGDATABASE=%s\n' "$PORT" "$DBNAME" ;;
    wipe) pooler_stop; replica_stop; stop; rm -rf "$BASE"; echo "db: removed $BASE" ;;
    *) echo "usage: $0 start|stop|status|port|env|wipe|pooler-start|pooler-stop|pooler-port|pooler-config DIR|pooler-users|replica-start|replica-stop|replica-port" >&2; exit 2 ;;
esac

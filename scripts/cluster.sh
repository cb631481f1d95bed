#!/usr/bin/env bash
# The one way this project starts a throwaway PostgreSQL 15 cluster, a pgbouncer in front
# of it and a streaming hot standby of it. Used by scripts/db.sh (the checkout's cluster,
# `make db-*`), bench/run and the benchmark harness (its pooler and standby), and the
# tests' private clusters (tests/python/operations/test_migrations.py: PrivateCluster).
#
# Command line (DIR holds everything: DIR/data, DIR/postgresql.log, DIR/pgbouncer/,
# DIR/standby/, DIR/standby.log):
#
#   scripts/cluster.sh init     --dir DIR --port PORT [--conf LINES]...   initdb, if not yet
#   scripts/cluster.sh start    --dir DIR [--log FILE] [--postgres BINARY] [--timeout S]
#   scripts/cluster.sh stop     --dir DIR [--mode fast|immediate]
#   scripts/cluster.sh status   --dir DIR                                 exit 3 when stopped
#   scripts/cluster.sh pooler-start --dir DIR --port PORT --pooler-port P [--pool-size N]
#   scripts/cluster.sh pooler-stop  --dir DIR
#   scripts/cluster.sh standby-create --dir DIR --port PORT --standby-port P [--slot NAME]
#   scripts/cluster.sh standby-start  --dir DIR [--port PORT --standby-port P --slot NAME]
#                                     (creates it first when DIR/standby holds none)
#   scripts/cluster.sh standby-stop   --dir DIR [--mode fast|immediate]
#   scripts/cluster.sh standby-remove --dir DIR --port PORT [--slot NAME]   stop, drop slot, rm
#   scripts/cluster.sh destroy  --dir DIR      stop pooler, standby and cluster; delete DIR
#   scripts/cluster.sh free-port START [END]   the first port from START nothing listens on
#
# The cluster: initdb as user postgres, trust authentication, UTF8, C.UTF-8; listening on
# 127.0.0.1 only, no Unix socket; the --conf lines appended to postgresql.conf. As root
# everything runs as the `postgres` OS user (PostgreSQL refuses to run as root). pgbouncer:
# transaction pooling in front of every database of the cluster. The standby: pg_basebackup
# with a replication slot, hot_standby on, read-only.
#
# Sourced (`. scripts/cluster.sh`), it defines the cluster_* functions below and runs
# nothing; they exit the calling script on failure, printing what went wrong.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

if [ "$(id -u)" = 0 ]; then
    CLUSTER_OWNER=postgres
    as_owner() { runuser -u postgres -- "$@"; }
else
    CLUSTER_OWNER=$(id -un)
    as_owner() { "$@"; }
fi

cluster_die() { echo "cluster: $*" >&2; exit 1; }

# A folder the cluster's OS user owns.
cluster_own_dir() {
    mkdir -p "$1"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$1"; fi
}

# Free: no socket on this machine uses the port (listening, or as the local end of a
# connection, which would make a bind fail too); without ss, nothing answers on it.
cluster_port_free() {
    if command -v ss >/dev/null; then
        [ -z "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# cluster_free_port START [END]: the first port in START..END-1 nothing listens on.
cluster_free_port() {
    local port=$1 end=${2:-$(($1 + 100))}
    while ! cluster_port_free "$port"; do
        port=$((port + 1))
        [ "$port" -lt "$end" ] || cluster_die "no free port in $1..$((end - 1))"
    done
    echo "$port"
}

# cluster_init DATA PORT INITDB_LOG: initdb into DATA (if it holds no cluster yet), then
# the settings every throwaway cluster has, then the caller's (stdin, appended as is).
cluster_init() {
    local data=$1 port=$2 initdb_log=$3
    if [ -f "$data/PG_VERSION" ]; then cat >/dev/null; return 0; fi
    cluster_own_dir "$(dirname "$data")"
    as_owner "$PGBIN/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        >"$initdb_log" 2>&1 || { cat "$initdb_log" >&2; exit 1; }
    {
        echo "# --- throwaway cluster (scripts/cluster.sh) ---"
        printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = ''\n" "$port"
        cat
    } | as_owner tee -a "$data/postgresql.conf" >/dev/null
}

cluster_running() {
    [ -f "$1/postmaster.pid" ] && as_owner "$PGBIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# cluster_start DATA LOG [POSTGRES_BINARY] [TIMEOUT]: start, waiting up to TIMEOUT seconds
# (60) until it accepts connections; no-op when running.
cluster_start() {
    local data=$1 log=$2 timeout=${4:-60}
    cluster_running "$data" && return 0
    local extra=()
    if [ -n "${3:-}" ]; then extra=(-p "$3"); fi
    [ -e "$log" ] || { touch "$log" && if [ "$(id -u)" = 0 ]; then chown postgres: "$log"; fi; }
    as_owner "$PGBIN/pg_ctl" -D "$data" -l "$log" "${extra[@]}" -w -t "$timeout" start >/dev/null \
        || { tail -n 30 "$log" >&2; exit 1; }
}

cluster_restart() {
    as_owner "$PGBIN/pg_ctl" -D "$1" -l "$2" -w -t 60 restart >/dev/null \
        || { tail -n 30 "$2" >&2; exit 1; }
}

# cluster_stop DATA [MODE]: stop (fast by default), waiting up to 60 s; no-op when it is
# not running.
cluster_stop() {
    local data=$1 mode=${2:-fast}
    cluster_running "$data" || return 0
    as_owner "$PGBIN/pg_ctl" -D "$data" -m "$mode" -w -t 60 stop >/dev/null \
        || cluster_die "could not stop the cluster in $data (pg_ctl stop -m $mode)"
}

# The pgbouncer configuration for files in directory DIR: transaction pooling in front of
# every database of the cluster on PORT, listening on POOLER_PORT, POOL_SIZE server
# connections.
cluster_pooler_config() {
    local dir=$1 port=$2 pooler_port=$3 pool_size=$4
    cat <<INI
[databases]
* = host=127.0.0.1 port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pooler_port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = $pool_size
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 2000
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 0
log_disconnections = 0
INI
}

# Who may log in through pgbouncer (auth_type = trust still needs the names).
cluster_pooler_users() { printf '"postgres" ""\n"authenticator" ""\n'; }

cluster_pooler_running() {
    [ -f "$1/pgbouncer.pid" ] && kill -0 "$(cat "$1/pgbouncer.pid")" 2>/dev/null
}

# cluster_pooler_start DIR PORT POOLER_PORT POOL_SIZE: pgbouncer as the cluster's OS user,
# its files in DIR; waits until it answers. No-op when running.
cluster_pooler_start() {
    local dir=$1 port=$2 pooler_port=$3 pool_size=$4
    cluster_pooler_running "$dir" && return 0
    command -v pgbouncer >/dev/null \
        || cluster_die "pgbouncer is not installed (apt-get install pgbouncer)"
    cluster_own_dir "$dir"
    cluster_pooler_config "$dir" "$port" "$pooler_port" "$pool_size" \
        | as_owner tee "$dir/pgbouncer.ini" >/dev/null
    cluster_pooler_users | as_owner tee "$dir/userlist.txt" >/dev/null
    as_owner pgbouncer -d -q "$dir/pgbouncer.ini" || { tail -n 20 "$dir/pgbouncer.log" >&2; exit 1; }
    for _ in $(seq 50); do
        "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$pooler_port" && break
        sleep 0.1
    done
}

# cluster_pooler_stop DIR: no-op when it is not running.
cluster_pooler_stop() {
    cluster_pooler_running "$1" || return 0
    kill "$(cat "$1/pgbouncer.pid")"
    for _ in $(seq 50); do cluster_pooler_running "$1" || break; sleep 0.1; done
}

# cluster_standby_create PORT STANDBY_DATA STANDBY_PORT SLOT: a base backup of the cluster
# on PORT into STANDBY_DATA, streaming through replication slot SLOT (made anew), set up
# as a hot standby on STANDBY_PORT. No-op when STANDBY_DATA holds a cluster.
cluster_standby_create() {
    local port=$1 data=$2 standby_port=$3 slot=$4
    [ -f "$data/PG_VERSION" ] && return 0
    cluster_own_dir "$(dirname "$data")"
    cluster_drop_slot "$port" "$slot"
    as_owner "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$data" \
        -R -C -S "$slot" -X stream -c fast >/dev/null
    as_owner tee -a "$data/postgresql.conf" >/dev/null <<CONF
# --- streaming hot standby (scripts/cluster.sh) ---
port = $standby_port
hot_standby = on
shared_preload_libraries = ''
CONF
}

cluster_drop_slot() {
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres \
        -c "SELECT pg_drop_replication_slot('$2') WHERE EXISTS
              (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$2')" >/dev/null
}

# --- the command line ---------------------------------------------------------------------

cluster_main() {
    set -euo pipefail
    local cmd=${1:-} dir="" port="" log="" postgres="" mode=fast pooler_port="" standby_port=""
    local timeout=60
    local slot=throwaway_standby pool_size=$((2 * $(nproc))) conf=()
    [ $# -gt 0 ] && shift
    if [ "$cmd" = free-port ]; then cluster_free_port "${1:?usage: $0 free-port START [END]}" "${2:-}"; return; fi
    while [ $# -gt 0 ]; do
        case "$1" in
            --dir) dir=$2 ;;
            --port) port=$2 ;;
            --log) log=$2 ;;
            --postgres) postgres=$2 ;;
            --timeout) timeout=$2 ;;
            --mode) mode=$2 ;;
            --conf) conf+=("$2") ;;
            --pooler-port) pooler_port=$2 ;;
            --pool-size) pool_size=$2 ;;
            --standby-port) standby_port=$2 ;;
            --slot) slot=$2 ;;
            *) cluster_die "unknown option $1 (see $0 --help)" ;;
        esac
        shift 2
    done
    case "$cmd" in -h|--help|'') sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; return 0 ;; esac
    [ -n "$dir" ] || cluster_die "$cmd needs --dir DIR"
    dir=$(realpath -m "$dir")
    local data="$dir/data" standby="$dir/standby"
    need() { [ -n "$2" ] || cluster_die "$cmd needs $1"; }
    case "$cmd" in
        init)
            need --port "$port"
            if [ ${#conf[@]} -gt 0 ]; then printf '%s\n' "${conf[@]}"; fi \
                | cluster_init "$data" "$port" "$dir/initdb.log" ;;
        start) cluster_start "$data" "${log:-$dir/postgresql.log}" "$postgres" "$timeout" ;;
        stop) cluster_stop "$data" "$mode" ;;
        status) cluster_running "$data" || exit 3 ;;
        pooler-start)
            need --port "$port"; need --pooler-port "$pooler_port"
            cluster_pooler_start "$dir/pgbouncer" "$port" "$pooler_port" "$pool_size" ;;
        pooler-stop) cluster_pooler_stop "$dir/pgbouncer" ;;
        standby-create)
            need --port "$port"; need --standby-port "$standby_port"
            cluster_standby_create "$port" "$standby" "$standby_port" "$slot" ;;
        standby-start)
            if [ ! -f "$standby/PG_VERSION" ]; then
                need --port "$port"; need --standby-port "$standby_port"
                cluster_standby_create "$port" "$standby" "$standby_port" "$slot"
            fi
            cluster_start "$standby" "${log:-$dir/standby.log}" "" "$timeout" ;;
        standby-stop) cluster_stop "$standby" "$mode" ;;
        standby-remove)
            (cluster_stop "$standby" "$mode") || (cluster_stop "$standby" immediate) || true
            if [ -n "$port" ]; then cluster_drop_slot "$port" "$slot" || true; fi
            rm -rf "$standby" ;;
        destroy)
            (cluster_pooler_stop "$dir/pgbouncer") || true
            (cluster_stop "$standby" immediate) || true
            (cluster_stop "$data" "$mode") || (cluster_stop "$data" immediate) || true
            rm -rf "$dir" ;;
        *) cluster_die "unknown command $cmd (see $0 --help)" ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    cluster_main "$@"
fi

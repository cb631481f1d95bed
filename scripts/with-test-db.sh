#!/usr/bin/env bash
# Runs a command against a database of its own: creates a new database on the server the
# PG* variables name, deploys the package into it (sqitch deploy --verify), runs the
# command with PGDATABASE set to it, and drops it afterwards, whatever the outcome.
#
#   scripts/with-test-db.sh LABEL COMMAND [ARGS...]
#
# The name is autodoctor_test_<label>_<pid>: unique, so a database that exists already
# (the demo's, a user's) is never touched. Tests never run in the demo's database.
set -euo pipefail

LABEL=${1:?usage: $0 LABEL COMMAND [ARGS...]}
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME="autodoctor_test_${LABEL}_$$"

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

drop() { psql_admin -c "DROP DATABASE IF EXISTS \"$NAME\" WITH (FORCE)" >/dev/null 2>&1 || true; }
trap drop EXIT

echo "tests: scratch database $NAME on ${PGHOST:-local}:${PGPORT:-5432} (dropped at the end)"
psql_admin -c "CREATE DATABASE \"$NAME\""
out=$(cd "$ROOT" && sqitch deploy --verify "db:pg:$NAME" 2>&1) \
    || { printf '%s\n' "$out" >&2; echo "tests: sqitch deploy into $NAME failed" >&2; exit 1; }
PGDATABASE=$NAME "$@"

"""A relay that reads session events from the WAL by logical decoding (wal2json, streamed by
pg_recvlogical over a replication connection) and announces each on channel autodoctor with
the package's ids-only payload, one transaction per batch of what has arrived.

Benchmark-only (section ``decoding``): it measures what a WAL-reading relay would give
against the package's two delivery modes. It is not part of the package. Two kinds:

- ``messages``: the writers emit ``pg_logical_emit_message(true, 'autodoctor', payload)``
  (a bench trigger on session_events instead of the NOTIFY trigger); the relay announces
  each message's content.
- ``rows``: the writers only log; the relay decodes the inserts into session_events'
  partitions and builds the payload from the decoded columns.

Slot handling is the benchmark's: the slot is made at start and dropped at exit, and
pg_recvlogical confirms what it has written to the pipe, so an event decoded but not yet
announced when the relay dies would be lost (a production relay would confirm only after
the NOTIFY transaction commits).

Run: python logical_relay.py --dsn DSN --pgbin DIR --kind messages|rows [--slot NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg

NOTIFY_MESSAGES = """
SELECT count(pg_notify('autodoctor', m.content))
  FROM (SELECT u.content FROM unnest(%s::text[]) WITH ORDINALITY AS u(content, n)
         ORDER BY u.n) AS m
"""

NOTIFY_ROWS = """
SELECT count(pg_notify('autodoctor', json_build_object(
           'event_id', r.id, 'event', r.event, 'request_id', r.request_id,
           'session_id', r.session_id, 'session_type', r.session_type,
           'plan_code', r.plan_code, 'at', r.at)::text))
  FROM (SELECT * FROM jsonb_to_recordset(%s::jsonb)
                 AS x(n bigint, id bigint, event text, request_id uuid, session_id uuid,
                      session_type text, plan_code text, at timestamptz)
         ORDER BY x.n) AS r
"""

ROW_COLUMNS = ("id", "event", "request_id", "session_id", "session_type", "plan_code", "at")


def plugin_options(kind: str) -> list[str]:
    common = ["format-version=2", "include-transaction=false", "include-type-oids=false"]
    if kind == "messages":
        # No table changes at all, only this package's messages.
        return [*common, "filter-tables=*.*", "add-msg-prefixes=autodoctor"]
    # Inserts into autodoctor's tables (session_events' partitions among them; wal2json
    # names the partition, not the parent), no messages.
    return [*common, "add-tables=autodoctor.*", "actions=insert"]


def parse(kind: str, lines: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for line in lines:
        if not line.strip():
            continue
        change = json.loads(line)
        if kind == "messages":
            if change.get("action") == "M" and change.get("prefix") == "autodoctor":
                out.append(change["content"])
        elif change.get("action") == "I" and str(change.get("table", "")).startswith(
            "session_events"
        ):
            cols = {c["name"]: c["value"] for c in change["columns"]}
            out.append({"n": len(out), **{k: cols.get(k) for k in ROW_COLUMNS}})
    return out


def drop_slot(base: list[str], attempts: int = 25) -> None:
    """Drop the slot if it exists, retrying while the server still has it in use (the
    walsender of a pg_recvlogical that just exited); raises if it stays."""
    for _ in range(attempts):
        proc = subprocess.run(
            [*base, "--drop-slot"], capture_output=True, text=True, timeout=30, check=False
        )
        if proc.returncode == 0 or "does not exist" in proc.stderr:
            return
        time.sleep(0.2)
    raise RuntimeError(f"could not drop the slot: {proc.stderr.strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--pgbin", required=True)
    ap.add_argument("--kind", choices=("messages", "rows"), required=True)
    ap.add_argument("--slot", default="")
    args = ap.parse_args()
    slot = args.slot or f"bench_relay_{args.kind}"
    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    # Before the slot exists, so that a stop at any point still reaches the cleanup below.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    recv = os.path.join(args.pgbin, "pg_recvlogical")
    base = [recv, "-d", args.dsn, "-S", slot]
    # A fresh slot: one left by an earlier relay would replay everything since then.
    drop_slot(base)
    subprocess.run([*base, "--create-slot", "-P", "wal2json"], check=True, timeout=60)
    options = [x for o in plugin_options(args.kind) for x in ("-o", o)]
    proc = subprocess.Popen(
        [*base, "--start", "--no-loop", "-F", "0", "-f", "-", *options], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    announced = 0
    try:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            pending = b""
            while not stopping:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    if proc.poll() is not None:
                        raise RuntimeError(f"pg_recvlogical exited with {proc.returncode}")
                    continue
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise RuntimeError("pg_recvlogical closed its output")
                *lines, pending = (pending + chunk).split(b"\n")
                batch = parse(args.kind, lines)
                if not batch:
                    continue
                if args.kind == "messages":
                    conn.execute(NOTIFY_MESSAGES, (batch,))
                else:
                    conn.execute(NOTIFY_ROWS, (json.dumps(batch),))
                announced += len(batch)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        drop_slot(base)
    print(f"logical relay ({args.kind}): announced {announced} events", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

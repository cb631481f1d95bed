"""Section ``counters`` (items 1 and 7): what one operation writes and reads, by counters
that do not depend on the machine's noise.

For each hot path and its yardsticks (the accept in every delivery mode, its bare floor on
this schema, pgbench's tpcb-like, create_session_request and submit_intake, and the same
at v0.1.0: the before of each, the issue's floor among them), one pgbench client runs the
same script as the throughput runs for a fixed number of transactions right after a
``CHECKPOINT`` (every page touched for the first time since writes a full-page image),
then twice as many unmeasured, then the same number again (steady state). Per transaction:
WAL records and bytes (``pg_waldump --stats=record`` over the batch's LSN range, full-page
images included; autovacuum is off for the section, so that range holds the batch's own
WAL), index entries inserted (B-tree leaf and posting-list inserts), heap tuples inserted
and updated with how many of the updates were HOT (WAL record counts), and buffer accesses
(``pg_stat_database`` blocks hit + read of the database, flushed when pgbench's client
exits)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.types.json import Jsonb

from .config import BENCH, DEFAULT_MODE, DELIVERY_MODES
from .stats import fmt, fspread, log, med

if TYPE_CHECKING:
    from .runner import Harness

#: Transactions per batch (quick profile: a tenth). After the checkpoint's batch, twice as
#: many run unmeasured, so the steady batch is transactions 3,001-4,000 after the
#: checkpoint, as in the performance issue: at a million rows the 1,001st-2,000th still
#: image many random B-tree leaves for the first time.
TRANSACTIONS = 1000
WARM_BATCHES = 2
#: The release the "before" rows are measured on: the issue's yardstick is the floor of the
#: schema it was filed against. The section reverts the benchmark database to it with
#: ``sqitch revert --to`` (this throwaway cluster only, data kept), measures the rows
#: marked ``release``, and deploys the head again for the rest.
BEFORE = "@v0.1.0"
#: The op whose steady WAL bytes the accept's are held to (item 1).
FLOOR_KEY = "bare_v010"
#: "<rmgr>/<record type>  <count> [..%] <rec bytes> [..%] <fpi bytes> [..%] <total> [..%]"
_ROW = re.compile(
    r"^(\S+)\s+(\d+)\s+\([^)]*\)\s+[\d.]+\s+\d+\s+\([^)]*\)\s+[\d.]+\s+\d+\s+\([^)]*\)"
)
_TOTAL = re.compile(r"^Total\s+(\d+)\s+(\d+)\s+\[[^]]*\]\s+(\d+)\s+\[[^]]*\]\s+(\d+)")
_STAT_ROW = re.compile(r"^(\S+/\S+)\s+(\d+)\s")
INDEX_INSERTS = ("Btree/INSERT_LEAF", "Btree/INSERT_POST")
HEAP_INSERTS = ("Heap/INSERT", "Heap/INSERT+INIT", "Heap2/MULTI_INSERT", "Heap2/MULTI_INSERT+INIT")
HEAP_UPDATES = ("Heap/UPDATE", "Heap/UPDATE+INIT")
HOT_UPDATES = ("Heap/HOT_UPDATE", "Heap/HOT_UPDATE+INIT")


#: A pool or fixture id in a pgbench script (``md5('bench-<kind>-' || :n)::uuid``), and the
#: same row's time-ordered id (bench.uid_ordered in bench/sql/helpers.sql).
_SCRIPT_ID = re.compile(r"md5\('bench-(\w+)-' \|\| :n\)::uuid")
_ORDERED_ID = (
    r"(lpad(to_hex((:n)::bigint), 12, '0') || '7' || substr(md5('bench-\1-' || :n), 1, 19))::uuid"
)


def ordered_script(h: Harness, script: str) -> str:
    """``script`` rewritten for the pool of time-ordered ids: every id it derives from the
    pool number (the request's, and the bare floor's session id) is time-ordered, as this
    version creates them. Written next to the run's pgbench logs; returns its path."""
    text = (BENCH / "pgbench" / script).read_text()
    derived, count = _SCRIPT_ID.subn(_ORDERED_ID, text)
    if not count:
        raise RuntimeError(f"{script}: no pool id to rewrite")
    path = h.out / "pgbench" / f"ordered-{script}"
    path.write_text(
        f"-- Derived from bench/pgbench/{script}: ids from the pool number are time-ordered.\n"
        + derived
    )
    return str(path)


def _ops(h: Harness) -> list[dict[str, Any]]:
    """The rows of the table. The accept runs on pool requests with time-ordered ids, as
    create_session_request makes them since change time_ordered_ids (a mechanic accepts
    requests of the last day at most), and once more on requests with random ids (made
    before the upgrade). The rows marked ``release`` run on that release (BEFORE): the bare
    floor there is the issue's yardstick, and the accept, create and intake there are the
    "before" of each hot path."""
    p = h.prof
    pool = {"user": "postgres", "pool": True, "db": "bench"}
    ops: list[dict[str, Any]] = [
        {"key": "tpcb", "title": "pgbench tpcb-like", "db": "pgbench", "builtin": "tpcb-like"},
        {
            **pool,
            "key": FLOOR_KEY,
            "title": f"bare floor of the accept at {BEFORE[1:]} (its schema, random ids)",
            "script": "bare_accept.sql",
            "release": BEFORE,
        },
        {
            **pool,
            "key": "accept_v010",
            "title": f"accept_session_request at {BEFORE[1:]}, {DEFAULT_MODE}",
            "script": "accept.sql",
            "user": "authenticator",
            "release": BEFORE,
        },
        {
            **pool,
            "key": "bare",
            "title": "bare floor of the accept on this schema (UPDATE + INSERT, plain SQL)",
            "script": ordered_script(h, "bare_accept.sql"),
            "ordered": True,
        },
    ]
    for m in DELIVERY_MODES:
        ops.append(
            {
                **pool,
                "key": f"accept[{m.name}]",
                "title": f"accept_session_request, {m.name}"
                + (" (the default)" if m.name == DEFAULT_MODE else ""),
                "script": ordered_script(h, "accept.sql"),
                "user": "authenticator",
                "mode": m.name,
                "ordered": True,
            }
        )
    ops.append(
        {
            **pool,
            "key": "accept_random_ids",
            "title": f"accept_session_request, {DEFAULT_MODE}, on requests with random ids "
            "(made before the upgrade)",
            "script": "accept.sql",
            "user": "authenticator",
        }
    )
    for kind in ("create", "submit_intake"):
        for release in (BEFORE, None):
            name = "create_session_request" if kind == "create" else "submit_intake"
            ops.append(
                {
                    "key": kind + ("_v010" if release else ""),
                    "title": name + (f" at {BEFORE[1:]}" if release else ""),
                    "db": "bench",
                    "script": f"{kind}.sql",
                    "user": "authenticator",
                    "defines": {"ncust": p.customers},
                    "release": release,
                }
            )
    return ops


def _waldump(h: Harness, start: str, end: str) -> dict[str, int]:
    """Record counts per ``rmgr/type`` and the totals between two LSNs of the cluster."""
    wal = Path(h.args.base) / "data" / "pg_wal"
    proc = subprocess.run(
        [
            str(h.pgbin / "pg_waldump"),
            "--stats=record",
            "-p",
            str(wal),
            "-s",
            start,
            "-e",
            end,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        line = line.strip()
        m = _TOTAL.match(line)
        if m:
            out["_records"], out["_fpi_bytes"], out["_bytes"] = (
                int(m.group(1)),
                int(m.group(3)),
                int(m.group(4)),
            )
            continue
        m = _STAT_ROW.match(line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
    if "_records" not in out:
        raise RuntimeError(
            f"pg_waldump gave no total:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
        )
    return out


def _blocks(h: Harness, db: str) -> int:
    rows = h.sql(
        "SELECT blks_hit + blks_read FROM pg_stat_database WHERE datname = %s", (db,), db="postgres"
    )
    return int(rows[0][0])


def _batch(h: Harness, op: dict[str, Any], tag: str, n: int) -> dict[str, Any]:
    defines = dict(op.get("defines") or {})
    base = None
    if op.get("pool"):
        base = h.ensure_pool(n + 10, ordered=bool(op.get("ordered")))
        defines.update(
            {"base": base, "nc": 1, "k": 0, "nmech": h.prof.mechanics, "ncust": h.prof.customers}
        )
    cmd = h.pgbench_cmd(
        tag,
        op["db"],
        1,
        60,
        builtin=op.get("builtin"),
        script=op.get("script"),
        user=op.get("user", "postgres"),
        defines=defines,
    )
    i = cmd.index("-T")
    cmd[i : i + 2] = ["-t", str(n)]
    lsn0 = str(h.sql("SELECT pg_current_wal_insert_lsn()")[0][0])
    blocks0 = _blocks(h, op["db"])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    lsn1 = str(h.sql("SELECT pg_current_wal_insert_lsn()")[0][0])
    blocks1 = _blocks(h, op["db"])
    res = h.pgbench_result(tag, proc, proc.stdout, proc.stderr, proc.returncode)
    if base is not None:
        h.consumed(base + n + 10)
    done = res.get("transactions") or 0
    if proc.returncode != 0 or done != n or res.get("failed"):
        raise RuntimeError(f"{tag}: pgbench failed ({done} of {n}):\n{proc.stderr[-1500:]}")
    wal = _waldump(h, lsn0, lsn1)

    def count(names: tuple[str, ...]) -> int:
        return sum(wal.get(k, 0) for k in names)

    return {
        "wal_records": wal["_records"] / n,
        "wal_bytes": wal["_bytes"] / n,
        "fpi_bytes": wal["_fpi_bytes"] / n,
        "index_entries": count(INDEX_INSERTS) / n,
        "heap_inserts": count(HEAP_INSERTS) / n,
        "heap_updates": count(HEAP_UPDATES) / n,
        "hot_updates": count(HOT_UPDATES) / n,
        "buffers": (blocks1 - blocks0) / n,
    }


@contextlib.contextmanager
def _no_autovacuum(h: Harness) -> Iterator[None]:
    """Autovacuum off for the section (and its running workers stopped), restored
    afterwards: the WAL of a batch's LSN range is the whole cluster's, so a vacuum landing
    in a batch would be counted as the operation's. A precaution: two runs with and without
    it gave the same figures; the repetition-to-repetition spread it was meant to remove
    came from pool rows inserted after the checkpoint (see _measure_op)."""
    h.sql("ALTER SYSTEM SET autovacuum = off", db="postgres")
    h.sql("SELECT pg_reload_conf()", db="postgres")
    try:
        deadline = time.monotonic() + 60
        while True:
            rows = h.sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE backend_type = 'autovacuum worker'",
                db="postgres",
            )
            if not rows[0][0] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        yield
    finally:
        h.sql("ALTER SYSTEM RESET autovacuum", db="postgres")
        h.sql("SELECT pg_reload_conf()", db="postgres")


def measure(h: Harness) -> dict[str, Any]:
    with _no_autovacuum(h):
        return _measure(h)


def _measure(h: Harness) -> dict[str, Any]:
    """Per transaction, after a checkpoint and in steady state, for every hot path."""
    p = h.prof
    n = TRANSACTIONS // 10 if p.name == "quick" else TRANSACTIONS
    ops = _ops(h)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        o["key"]: {"checkpoint": [], "steady": []} for o in ops
    }
    # The rows on the release first (one revert, all repetitions), then the head's.
    for release in (BEFORE, None):
        phase = [op for op in ops if op.get("release") == release]
        with _at_release(h, release):
            for rep in range(p.reps):
                for op in phase:
                    _measure_op(h, op, rep, n, runs)
    return {"ops": [{k: o[k] for k in ("key", "title")} for o in ops], "runs": runs, "n": n}


@contextlib.contextmanager
def _at_release(h: Harness, release: str | None) -> Iterator[None]:
    """The benchmark database at ``release`` (None: as deployed) for the block, then back
    at the head with the benchmark's settings."""
    if release is None:
        yield
        return
    saved = h.sql("SELECT to_jsonb(s) FROM autodoctor.settings s")[0][0]
    started = h.now()
    _sqitch(h, "revert", "-y", "--to", release)
    try:
        yield
    finally:
        _sqitch(h, "deploy")
        _restore_settings(h, saved)
        # v0.1.0's create queued its new-request e-mails in its own transaction (50 each):
        # left pending, the relay mode's worker would spend the head's runs sending them.
        h.sql("DELETE FROM autodoctor.notification_outbox WHERE created_at >= %s", (started,))


def _restore_settings(h: Harness, saved: dict[str, Any]) -> None:
    """The benchmark's settings again (dataset.sql lifts the pending-request cap), after a
    revert dropped the columns added since the release and the deploy re-added them with
    their defaults."""
    cols = [
        c
        for (c,) in h.sql(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'autodoctor.settings'::regclass"
            " AND attnum > 0 AND NOT attisdropped AND attname <> 'id'"
        )
        if c in saved
    ]
    query = sql.SQL(
        "UPDATE autodoctor.settings s SET ({}) = (SELECT {} FROM jsonb_populate_record("
        "NULL::autodoctor.settings, %s) r)"
    ).format(
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Identifier("r", c) for c in cols),
    )
    h.sql(query.as_string(None), (Jsonb(saved),))


def _sqitch(h: Harness, *args: str) -> None:
    """sqitch on the benchmark database, from the repository (bookkeeping, not measured)."""
    started = time.monotonic()
    h.run_cmd(
        ["sqitch", *args, f"db:pg://postgres@127.0.0.1:{h.port}/bench"], timeout=900, cwd=h.root
    )
    log(f"  counters: sqitch {' '.join(args)} in {time.monotonic() - started:.0f} s")


def _measure_op(
    h: Harness, op: dict[str, Any], rep: int, n: int, runs: dict[str, dict[str, list[Any]]]
) -> None:
    if op.get("mode"):
        h.set_mode(op["mode"])
    try:
        with h.relay(op.get("mode") or DEFAULT_MODE):
            since = h.now()
            if op.get("pool"):
                # Grow the pool of pending requests before the checkpoint: rows inserted
                # after it would image the leaves the measured batch then finds already
                # imaged (a floor of 3 kB in one run, 21 kB in the next).
                h.ensure_pool((2 + WARM_BATCHES) * (n + 10), ordered=bool(op.get("ordered")))
            h.checkpoint()
            tag = f"r{rep}-counters-{op['key'].replace('[', '-').replace(']', '')}"
            after = _batch(h, op, tag + "-ckpt", n)
            _batch(h, op, tag + "-warm", WARM_BATCHES * n)
            steady = _batch(h, op, tag + "-steady", n)
    finally:
        if op.get("mode"):
            h.set_mode(DEFAULT_MODE)
    if op.get("pool"):
        h.cleanup_sessions(since)
    else:
        h.stamp_fanned_out()
    runs[op["key"]]["checkpoint"].append(after)
    runs[op["key"]]["steady"].append(steady)
    log(
        f"  counters rep {rep + 1} {op['key']}: steady {steady['wal_bytes']:.0f} B "
        f"{steady['wal_records']:.1f} rec {steady['index_entries']:.1f} idx "
        f"{steady['buffers']:.0f} buf; after checkpoint {after['wal_bytes']:.0f} B"
    )


COLUMNS = (
    ("wal_bytes", "WAL bytes", 0),
    ("wal_records", "WAL records", 1),
    ("index_entries", "index entries", 1),
    ("heap_inserts", "heap inserts", 1),
    ("heap_updates", "non-HOT updates", 1),
    ("hot_updates", "HOT updates", 1),
    ("buffers", "buffer accesses", 0),
)


def render(rep: Any) -> str:
    if (msg := rep.missing("counters")) is not None:
        return msg
    s = rep.s["counters"]
    lines = [
        f"One pgbench client, {s['n']:,} transactions right after a `CHECKPOINT`, then "
        f"{WARM_BATCHES * s['n']:,} unmeasured and {s['n']:,} more (steady state: "
        f"transactions {(WARM_BATCHES + 1) * s['n'] + 1:,}-{(WARM_BATCHES + 2) * s['n']:,} "
        "after the checkpoint; autovacuum off for the section, so each batch's WAL is its "
        "own), per transaction (median over the repetitions): WAL "
        "from `pg_waldump --stats=record` over each batch's LSN range (full-page images "
        "included), index entries = B-tree leaf and posting-list inserts, heap row writes by "
        "WAL record, buffer accesses = `pg_stat_database` blocks hit + read of the database. "
        "The same scripts as the throughput runs (accept on its own pending request, create "
        "by a random customer). Here the accepts and this schema's bare floor take pending "
        "requests with time-ordered ids, as `create_session_request` has made them since "
        "change `time_ordered_ids` (a mechanic accepts requests of the last day at most); one "
        "row repeats the accept on requests with random ids, made before the upgrade (the "
        "throughput runs use those). The rows at "
        + BEFORE[1:]
        + " (the before of each hot path, the floor included) run on that release: the "
        "benchmark database is reverted to it with `sqitch revert --to "
        + BEFORE
        + "`, data kept, and deployed to the head again afterwards; its requests and "
        "sessions have random ids, as it made them.",
        "",
        "| per transaction | WAL bytes steady / after checkpoint | "
        + " | ".join(title for _, title, _ in COLUMNS[1:])
        + " |",
        "|---|---:|" + "---:|" * (len(COLUMNS) - 1),
    ]
    for op in s["ops"]:
        r = s["runs"][op["key"]]
        steady, ckpt = r["steady"], r["checkpoint"]
        cells = [
            f"{fmt(med([x['wal_bytes'] for x in steady]))} / "
            f"{fmt(med([x['wal_bytes'] for x in ckpt]))}"
        ]
        for key, _, digits in COLUMNS[1:]:
            cells.append(fmt(med([x[key] for x in steady]), digits))
        lines.append(f"| {op['title']} | " + " | ".join(cells) + " |")
    acc = s["runs"].get(f"accept[{DEFAULT_MODE}]", {}).get("steady", [])
    bare = (s["runs"].get(FLOOR_KEY) or s["runs"].get("bare", {})).get("steady", [])
    if acc and bare:
        a, b = med([x["wal_bytes"] for x in acc]), med([x["wal_bytes"] for x in bare])
        ok = None if a is None or b is None else a <= b
        v = rep.goal(
            f"1. accept WAL bytes per op, steady ({DEFAULT_MODE}) vs the bare floor at "
            f"{BEFORE[1:]}",
            "<= the bare floor's",
            f"{fmt(a)} vs {fmt(b)}",
            ok,
        )
        spread = fspread([x["wal_bytes"] for x in acc])
        lines += [
            "",
            f"Accept WAL bytes per transaction in steady state ({DEFAULT_MODE}): {fmt(a)} "
            f"(spread {spread}) against {fmt(b)} for the bare floor at {BEFORE[1:]}: {v}.",
        ]
        old = s["runs"].get("accept_random_ids", {}).get("steady", [])
        if old:
            o = med([x["wal_bytes"] for x in old])
            lines[-1] += (
                f" On requests with random ids (made before the upgrade) the accept writes "
                f"{fmt(o)}: the request's own primary-key and foreign-key entries, and its "
                "event's request index entry, land on random leaves again."
            )
    return "\n".join(lines)

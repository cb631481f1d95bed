"""Section ``realtime`` (issue 15): what the Supabase Realtime broadcast rows cost per create
and per accept, with Realtime's schema present, in each NOTIFY delivery mode.

Counters, not clocks: the WAL each batch wrote (``pg_waldump --stats`` over the batch's LSN
range: records and bytes, full-page images included), and the ``realtime.messages`` rows
it added. One client, in a database of its own (a copy of ``bench_template`` with the test
fixture's Realtime schema, tests/fixtures/supabase_realtime.sql), so the other sections
measure without Realtime."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import workloads

from .stats import fmt, fspread, log, med

if TYPE_CHECKING:
    from .runner import Harness

DB = "bench_realtime"
# Online in the market (the create's e-mail fan-out, as in section 5), each with room for
# 100 sessions: more than a full run's accepts (reps x configs x (warmup + ops) / 50).
MECHANICS = 50
CONFIGS = (  # (notify mode, Realtime broadcast on)
    ("transaction", False),
    ("transaction", True),
    ("relay", False),
    ("relay", True),
)
# "Total  <records>  <record bytes> [..%]  <FPI bytes> [..%]  <combined bytes> [100%]"
_TOTAL = re.compile(r"^Total\s+(\d+)\s+(\d+)\s+\[[^]]*\]\s+(\d+)\s+\[[^]]*\]\s+(\d+)")


def _key(mode: str, on: bool) -> str:
    return f"{mode}/{'on' if on else 'off'}"


def _uid(kind: str, n: int) -> str:
    return f"00000000-0000-4000-{'a' if kind == 'mech' else 'c'}000-{n:012d}"


def _act(conn: psycopg.Connection[Any], uid: str) -> None:
    conn.execute(
        workloads.SET_CALLER, {"role": "authenticated", "claims": workloads.claims(uuid.UUID(uid))}
    )


def _setup(h: Harness) -> None:
    h.sql(f"CREATE DATABASE {DB} TEMPLATE bench_template", db="postgres")
    with h.admin(DB) as conn:
        conn.execute((h.root / "tests" / "fixtures" / "supabase_realtime.sql").read_text())
        conn.execute("UPDATE autodoctor.settings SET max_pending_requests = 1000")
        conn.execute(
            "INSERT INTO auth.users (id, email, raw_user_meta_data)"
            " SELECT %s::uuid, 'customer@example.test', '{\"full_name\": \"Carla Customer\"}'",
            (_uid("cust", 1),),
        )
        conn.execute(
            "INSERT INTO auth.users (id, email, raw_user_meta_data)"
            " SELECT ('00000000-0000-4000-a000-' || lpad(n::text, 12, '0'))::uuid,"
            " 'mechanic' || n || '@example.test', jsonb_build_object('full_name', 'Mechanic ' || n)"
            " FROM generate_series(1, %s) n",
            (MECHANICS,),
        )
        with conn.transaction():
            conn.execute("SET LOCAL ROLE service_role")
            for n in range(1, MECHANICS + 1):
                conn.execute(
                    "SELECT autodoctor.register_mechanic(%s, max_concurrent_sessions => 100)",
                    (_uid("mech", n),),
                )
        for n in range(1, MECHANICS + 1):
            with conn.transaction():
                _act(conn, _uid("mech", n))
                conn.execute("SELECT autodoctor.set_mechanic_availability(true)")
        conn.execute("VACUUM ANALYZE")


def _lsn(conn: psycopg.Connection[Any]) -> str:
    return str(conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0])  # type: ignore[index]


def _waldump(h: Harness, start: str, end: str) -> tuple[int, int]:
    """(records, bytes) pg_waldump counts between two LSNs of the bench cluster."""
    wal = Path(h.args.base) / "data" / "pg_wal"
    proc = subprocess.run(
        [str(h.pgbin / "pg_waldump"), "--stats", "-p", str(wal), "-s", start, "-e", end],
        capture_output=True,
        text=True,
        timeout=120,
    )
    for line in proc.stdout.splitlines():
        m = _TOTAL.match(line.strip())
        if m:
            return int(m.group(1)), int(m.group(4))
    raise RuntimeError(f"pg_waldump gave no total:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")


def _messages(conn: psycopg.Connection[Any]) -> int:
    return int(conn.execute("SELECT count(*) FROM realtime.messages").fetchone()[0])  # type: ignore[index]


def _batch(h: Harness, conn: psycopg.Connection[Any], ops: int, warmup: int) -> dict[str, Any]:
    """``warmup`` then ``ops`` create+accept pairs; the counters of the measured creates
    and accepts apart."""
    requests: list[str] = []

    def create(k: int) -> None:
        with conn.transaction():
            _act(conn, _uid("cust", 1))
            row = conn.execute(
                "SELECT id FROM autodoctor.create_session_request('video', 'free', 'bench')"
            ).fetchone()
        requests.append(str(row[0]))  # type: ignore[index]

    def accept(k: int) -> None:
        with conn.transaction():
            _act(conn, _uid("mech", 1 + k % MECHANICS))
            conn.execute("SELECT autodoctor.accept_session_request(%s)", (requests[k],))

    for k in range(warmup):
        create(k)
        accept(k)
    out: dict[str, Any] = {}
    for name, op in (("create", create), ("accept", accept)):
        m0, l0 = _messages(conn), _lsn(conn)
        for k in range(warmup, warmup + ops):
            op(k)
        l1, m1 = _lsn(conn), _messages(conn)
        records, size = _waldump(h, l0, l1)
        out[name] = {
            "wal_records": records / ops,
            "wal_bytes": size / ops,
            "messages": (m1 - m0) / ops,
        }
    return out


def measure(h: Harness) -> dict[str, Any]:
    """Per create and per accept, with Realtime's schema present: WAL records and bytes and
    realtime.messages rows, broadcast off and on, in transaction and relay mode."""
    p = h.prof
    ops = 50 if p.name == "quick" else 200
    warmup = 10 if p.name == "quick" else 40
    _setup(h)
    runs: dict[str, list[dict[str, Any]]] = {
        f"{m}/{'on' if on else 'off'}": [] for m, on in CONFIGS
    }
    try:
        with h.admin(DB) as conn:
            for rep in range(p.reps):
                for mode, on in CONFIGS:
                    with conn.transaction():
                        conn.execute("SET LOCAL ROLE service_role")
                        conn.execute("SELECT autodoctor.set_notify_mode(%s)", (mode,))
                    conn.execute(
                        "SELECT autodoctor.enable_realtime()"
                        if on
                        else "SELECT autodoctor.disable_realtime()"
                    )
                    conn.execute("CHECKPOINT")
                    res = _batch(h, conn, ops, warmup)
                    key = _key(mode, on)
                    runs[key].append(res)
                    c, a = res["create"], res["accept"]
                    log(
                        f"  realtime rep {rep + 1} {key}: create {c['wal_bytes']:.0f} B "
                        f"{c['wal_records']:.1f} rec {c['messages']:.1f} msg; accept "
                        f"{a['wal_bytes']:.0f} B {a['wal_records']:.1f} rec {a['messages']:.1f} msg"
                    )
    finally:
        h.sql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", db="postgres")
    return {"runs": runs, "ops": ops, "warmup": warmup, "mechanics": MECHANICS}


def render(rep: Any) -> str:
    if (msg := rep.missing("realtime")) is not None:
        return msg
    s = rep.s["realtime"]
    lines = [
        f"One client, in a database with Realtime's schema (the test fixture), "
        f"{s['mechanics']} online mechanics in the market; per operation, the median over the "
        f"repetitions of {s['ops']} operations after {s['warmup']} warm-up pairs and a "
        "CHECKPOINT: WAL records and bytes from `pg_waldump --stats` over the batch's LSN "
        "range (full-page images included), and the `realtime.messages` rows written. "
        "Broadcast on = `enable_realtime()`: each create goes to the customer's and the "
        "market's topic, each accept to the customer's, the mechanic's and the market's.",
        "",
        "| delivery mode | Realtime broadcast | create: WAL records | WAL bytes | messages "
        "| accept: WAL records | WAL bytes | messages | accept bytes spread |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, rs in s["runs"].items():
        if not rs:
            continue
        mode, on = key.split("/")

        def m(op: str, field: str, rs: list[dict[str, Any]] = rs) -> float | None:
            return med([r[op][field] for r in rs])

        lines.append(
            f"| {mode} | {on} | {fmt(m('create', 'wal_records'), 1)} | "
            f"{fmt(m('create', 'wal_bytes'))} | {fmt(m('create', 'messages'), 1)} | "
            f"{fmt(m('accept', 'wal_records'), 1)} | {fmt(m('accept', 'wal_bytes'))} | "
            f"{fmt(m('accept', 'messages'), 1)} | "
            f"{fspread([r['accept']['wal_bytes'] for r in rs])} |"
        )
    notes = []
    for mode in ("transaction", "relay"):
        off, on = s["runs"].get(f"{mode}/off"), s["runs"].get(f"{mode}/on")
        if off and on:
            for op in ("create", "accept"):
                a = med([r[op]["wal_bytes"] for r in on])
                b = med([r[op]["wal_bytes"] for r in off])
                if a is not None and b:
                    notes.append(
                        f"- {mode} mode, {op}: the broadcast adds {fmt(a - b)} WAL bytes "
                        f"({(a - b) / b * 100:+.0f} %) per operation."
                    )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)

"""Section ``scale``, first half (item 11): accept through pgbouncer (transaction pooling) at many
client connections against a few direct ones; pgbouncer's SHOW STATS and SHOW POOLS."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg

from . import cluster
from .config import GOAL_POOLED_VS_DIRECT, POOL_STYLES
from .stats import EN_DASH, fmt, fspread, log, med

if TYPE_CHECKING:
    from .runner import Harness


def measure(h: Harness) -> dict[str, Any]:
    """Item 11: accept through pgbouncer (transaction pooling, pool 2 x cores) at 8, 64
    and 400 clients against 8 direct connections (the standby follows: ``standby``)."""
    p = h.prof
    pool_size = 2 * (os.cpu_count() or 1)
    # pgbouncer 1.18 in transaction pooling cannot keep server-side prepared statements,
    # so every run here (direct ones too) uses the extended protocol without them.
    runs: dict[str, list[dict[str, Any]]] = {}
    plan = [(style, "direct", p.direct_clients) for style in POOL_STYLES] + [
        (style, "pooled", c) for style in POOL_STYLES for c in p.pooled_clients
    ]
    plan.sort(key=lambda e: list(POOL_STYLES).index(e[0]))
    with cluster.pgbouncer(h, pool_size) as bport:
        for rep in range(p.reps):
            for style, kind, c in plan:
                key = f"{style}:{kind}@{c}"
                tag = f"r{rep}-scale-{style}-{kind}-{c}"
                script = POOL_STYLES[style][0]
                if kind == "direct":
                    res = h.accept_run(tag, c, p.seconds, script=script, protocol="extended")
                else:
                    before = bouncer_stats(h, bport)
                    cpu0 = cluster.pgbouncer_cpu_s(h)
                    with pool_sampler(h, bport) as peak:
                        res = h.accept_run(
                            tag, c, p.seconds, script=script, protocol="extended", port=bport
                        )
                    cpu = cluster.pgbouncer_cpu_s(h) - cpu0
                    after = bouncer_stats(h, bport)
                    # The CPU pgbouncer used, in cores over the pgbench run (as pgbench_cpu).
                    res["pooler_cpu"] = cpu / res["wall_s"] if res.get("wall_s") else None
                    xacts = after["total_xact_count"] - before["total_xact_count"]
                    res["pool_peak"] = dict(peak)
                    res["pool_xacts"] = xacts
                    res["pool_wait_ms"] = (
                        ((after["total_wait_time"] - before["total_wait_time"]) / 1000.0 / xacts)
                        if xacts
                        else None
                    )
                    res["server_xact_ms"] = (
                        ((after["total_xact_time"] - before["total_xact_time"]) / 1000.0 / xacts)
                        if xacts
                        else None
                    )
                runs.setdefault(key, []).append(res)
                if res.get("error"):
                    log(f"  scale {key}: ERROR {res['error'][-300:]}")
                else:
                    extra = (
                        f", waited for a server {res['pool_wait_ms']:.2f} ms/tx"
                        if res.get("pool_wait_ms") is not None
                        else ""
                    )
                    log(
                        f"  scale rep {rep + 1} {key}: {res['tps']:.0f} tps, p99 "
                        f"{res['p99_ms']:.1f} ms{extra}"
                    )
    return {
        "pool_size": pool_size,
        "direct_clients": p.direct_clients,
        "plan": [[st, k, c] for st, k, c in plan],
        "runs": runs,
        "pgbouncer": subprocess.run(
            ["pgbouncer", "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0:1],
    }


def bouncer_console(port: int) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        dbname="pgbouncer",
        autocommit=True,
        prepare_threshold=None,
    )


def bouncer_stats(h: Harness, port: int) -> dict[str, int]:
    with bouncer_console(port) as con:
        cur = con.execute("SHOW STATS")
        cols = [c.name for c in cur.description or []]
        for row in cur.fetchall():
            rec = dict(zip(cols, row, strict=False))
            if rec.get("database") == "bench":
                return {
                    k: int(rec[k])
                    for k in ("total_xact_count", "total_wait_time", "total_xact_time")
                }
    return {"total_xact_count": 0, "total_wait_time": 0, "total_xact_time": 0}


@contextlib.contextmanager
def pool_sampler(h: Harness, port: int, interval: float = 0.1) -> Iterator[dict[str, int]]:
    """Highest number of clients waiting for a server connection, and of server
    connections in use, seen in pgbouncer's SHOW POOLS during a run."""
    peak: dict[str, int] = {"cl_waiting": 0, "sv_active": 0, "cl_active": 0}
    stop = threading.Event()

    def sample() -> None:
        with contextlib.suppress(Exception), bouncer_console(port) as con:
            while not stop.wait(interval):
                cur = con.execute("SHOW POOLS")
                cols = [c.name for c in cur.description or []]
                for row in cur.fetchall():
                    rec = dict(zip(cols, row, strict=False))
                    if rec.get("database") == "bench":
                        for k in peak:
                            peak[k] = max(peak[k], int(rec.get(k) or 0))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join(timeout=5)


def render(rep: Harness) -> str:
    if (msg := rep.missing("scale")) is not None:
        return msg
    sc = rep.s["scale"]
    runs = sc["runs"]
    rows = [
        "| the transaction sent | client connections | server connections | tps median | spread | "
        "p50 ms | p99 ms | vs direct 8 | waited for a server, ms/tx | peak clients waiting |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts: list[str] = []
    for style in [st for st in POOL_STYLES if any(e[0] == st for e in sc["plan"])]:
        entries = [e for e in sc["plan"] if e[0] == style]
        direct = [
            r.get("tps") for r in runs.get(f"{style}:direct@{sc.get('direct_clients', 8)}", [])
        ]
        ratios: dict[int, list[float]] = {}
        for _, kind, clients in entries:
            rs = runs.get(f"{style}:{kind}@{clients}", [])
            tps = [r.get("tps") for r in rs]
            pooled = kind == "pooled"
            ratio = [a / b for a, b in zip(tps, direct, strict=False) if a and b]
            if pooled:
                ratios[clients] = ratio
            peaks = (r.get("pool_peak", {}).get("cl_waiting", 0) for r in rs)
            peak_waiting = max(peaks, default=None)
            rows.append(
                f"| {style}: {'through pgbouncer' if pooled else 'direct'} | {clients} | "
                f"{sc['pool_size'] if pooled else clients} | {fmt(med(tps))} | {fspread(tps)} | "
                f"{fmt(med([r.get('p50_ms') for r in rs]), 2)} | "
                f"{fmt(med([r.get('p99_ms') for r in rs]), 1)} | "
                f"{fmt(med(ratio), 2) + 'x' if pooled else '1'} | "
                f"{fmt(med([r.get('pool_wait_ms') for r in rs]), 2) if pooled else EN_DASH} | "
                f"{fmt(peak_waiting) if pooled else EN_DASH} |"
            )
        top = max(ratios) if ratios else None
        if top is None:
            continue
        ok = med(ratios[top]) >= GOAL_POOLED_VS_DIRECT if ratios[top] else None
        v = rep.goal(
            f"11. accept through pgbouncer, {top} clients vs 8 direct ({style})",
            f">= {GOAL_POOLED_VS_DIRECT}x",
            f"{fmt(med(ratios[top]), 2)}x",
            ok,
        )
        verdicts.append(
            f"- **{style}** ({POOL_STYLES[style][1]}): median {fmt(med(ratios[top]), 2)}x "
            f"(per repetition {fspread(ratios[top], 2)}): {v}."
        )
    out = [
        f"pgbouncer ({', '.join(sc.get('pgbouncer') or ['version unknown'])}) in transaction "
        "pooling with "
        f"`default_pool_size = {sc['pool_size']}` (2 x cores), configured as `make db-pooler` "
        "configures it, in "
        "front of the same cluster, pgbench clients on the same machine. The same accept "
        "transaction as item 1 "
        "(each client on its own pending request), sent two ways: *postgrest* is "
        "`pgbench/accept.sql` (BEGIN, "
        "the claims, the call and COMMIT as four round trips, as PostgREST sends them), *driver* "
        "is "
        "`pgbench/accept_pipelined.sql` (the same statements in one pipeline, one round trip, as "
        "the "
        "`autodoctor_db` driver sends a transaction). In transaction pooling a client holds a "
        "server "
        "connection from BEGIN to COMMIT, so every round trip inside the transaction is server "
        "time lost to "
        "the pool. pgbouncer 1.18 cannot carry server-side prepared statements across "
        "transactions, so every "
        "run of this table, the direct ones too, uses the extended protocol without them (`-M "
        "extended`): "
        "like for like, and its direct figures sit a little below item 1's `-M prepared` one. The "
        "wait column "
        "is pgbouncer's own `SHOW STATS` (time clients spent queued for a server connection, per "
        "transaction); the peak is from `SHOW POOLS`, sampled every 100 ms.",
        "",
        "\n".join(rows),
        "",
        f"Goal: at the most client connections, at least {GOAL_POOLED_VS_DIRECT}x the throughput "
        "of 8 direct "
        "connections sending the same transaction:",
        "",
        *verdicts,
    ]
    return "\n".join(out)

"""Section ``notify`` (item 8): commit-to-listener latency of probe accepts under an accept load,
for every delivery mode."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_MODE, DELIVERY_MODES, GOAL_DELIVERY_P99_MS, mode_by_name
from .stats import fmt, fspread, log, med, ms

if TYPE_CHECKING:
    from .runner import Harness


def wal_totals(h: Harness) -> tuple[int, int]:
    """(WAL fsyncs, WAL bytes) of the whole cluster so far."""
    rows = h.sql("SELECT wal_sync, wal_bytes::bigint FROM pg_stat_wal")
    return int(rows[0][0]), int(rows[0][1])


def held_writer(
    h: Harness, after_s: float, hold_s: float, stop: threading.Event, outcome: dict[str, Any]
) -> None:
    """A transaction of the bench database that holds a transaction id for ``hold_s``
    seconds from ``after_s`` on and writes nothing to the package's tables: a batch job or a
    migration of the same database, which the package's relay waited for before change
    ``event_position`` (it logs no event, so the mark now passes it). Notes in
    ``outcome`` how long it held one, or the error."""
    try:
        if stop.wait(after_s):
            return
        with h.admin() as conn, conn.transaction():
            conn.execute("SELECT pg_current_xact_id()")
            t0 = time.monotonic()
            stop.wait(hold_s)
            outcome["held_s"] = time.monotonic() - t0
    except Exception as exc:  # reported by latency_run
        outcome["error"] = repr(exc)


def latency_run(h: Harness, mode: str, tag: str, hold_s: float = 0.0) -> dict[str, Any]:
    """One run: an 8-client pgbench accept load in delivery mode ``mode`` (its relay
    running), a 9th client accepting every notify_interval_s and a listener noting when each
    of its events is announced. With ``hold_s``, a transaction of the same database stays
    open that long from a second into the run. Adds the cluster's WAL fsyncs and WAL bytes
    per accept over the run (whatever else wrote meanwhile, a relay included, counts against
    the accepts). Per accept, not per commit: a listener's backend runs a transaction of its
    own each time it is signalled, so with a listener attached the cluster's commits
    outnumber the writing ones."""
    p = h.prof
    h.set_mode(mode)
    probes = int(p.notify_seconds / p.notify_interval_s) + 100
    probe_base = h.ensure_pool(probes)
    h.consumed(probe_base + probes)
    pg_base = h.ensure_pool(h.estimate("accept", p.notify_seconds, 8))
    since = h.now()
    h.checkpoint()
    stop = threading.Event()
    held: dict[str, Any] = {}
    holder = threading.Thread(target=held_writer, args=(h, 1.0, hold_s, stop, held), daemon=True)
    with h.relay(mode):
        syncs0, bytes0 = wal_totals(h)
        cmd = h.pgbench_cmd(
            tag,
            "bench",
            8,
            p.notify_seconds,
            script="accept.sql",
            user="authenticator",
            defines={"base": pg_base, "nc": 8, "k": 0, "nmech": p.mechanics, "ncust": p.customers},
        )
        bg = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if hold_s:
            holder.start()
        try:
            lat = h.loadgen(
                {
                    "workload": "notify_latency",
                    "base": probe_base,
                    "seconds": p.notify_seconds,
                    "grace": 2.0 + hold_s,
                    "interval_s": p.notify_interval_s,
                }
            )
        finally:
            out, err = bg.communicate(timeout=p.notify_seconds + 120)
            stop.set()
            if hold_s:
                holder.join(timeout=30)
        syncs1, bytes1 = wal_totals(h)
    if hold_s and (holder.is_alive() or "error" in held or held.get("held_s", 0) < hold_s * 0.9):
        raise RuntimeError(f"the same-database writer was not held {hold_s} s: {held}")
    pg = h.pgbench_result(tag, None, out, err, bg.returncode)
    h.consumed(pg_base + 8 * (pg["max_k"] + 1))
    h.set_mode(DEFAULT_MODE)
    h.cleanup_sessions(since)
    accepts = (pg.get("transactions") or 0) + lat["probes"]
    return {
        "pgbench": pg,
        "latency": lat if mode_by_name(mode).delivers else None,
        "listener_notifications": lat["notifications"],
        "hold_s": hold_s,
        "held_s": held.get("held_s"),
        "fsyncs_per_accept": (syncs1 - syncs0) / accepts if accepts else None,
        "wal_bytes_per_accept": (bytes1 - bytes0) / accepts if accepts else None,
    }


def describe(entry: dict[str, Any]) -> str:
    pg, lat = entry["pgbench"], entry["latency"]
    text = f"{pg['tps']:.0f} tps with a listener"
    if lat is None:
        return text + ", no delivery"
    return (
        text + f"; latency p50 {ms(lat.get('p50_ms'))} ms p99 {ms(lat.get('p99_ms'))} ms, "
        f"missed {lat['missed']}/{lat['probes']}"
    )


def measure(h: Harness) -> dict[str, Any]:
    """Item 8 and the NOTIFY lock: commit-to-listener latency of probe accepts under an
    8-client pgbench accept load, for every delivery mode, with a listener attached."""
    runs: dict[str, list[dict[str, Any]]] = {m.name: [] for m in DELIVERY_MODES}
    for rep in range(h.prof.reps):
        for mode in DELIVERY_MODES:
            entry = latency_run(h, mode.name, f"r{rep}-notify-{mode.name}")
            runs[mode.name].append(entry)
            log(f"  notify rep {rep + 1} {mode.name}: {describe(entry)}")
    return {"runs": runs, "modes": [asdict(m) for m in DELIVERY_MODES]}


def render(rep: Harness) -> str:
    if (msg := rep.missing("notify")) is not None:
        return msg
    n = rep.s["notify"]
    lines = [
        "8 pgbench clients accepting (accept.sql) while a 9th client accepts every "
        f"{rep.r['profile']['notify_interval_s'] * 1000:.0f} ms and notes when its COMMIT "
        "returned; a listener "
        "(own autocommit connection, LISTEN autodoctor) notes when each of those events is "
        "announced. "
        "Latency = announced \u2212 commit returned (same monotonic clock).",
        "",
        "| delivery mode | accept tps @8 with a listener (median) | spread | latency p50 ms | p99 "
        "ms | p99 spread | missed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in n["modes"]:
        rs = n["runs"][mode["name"]]
        tps = [r["pgbench"]["tps"] for r in rs]
        if mode["delivers"]:
            p50 = med([r["latency"]["p50_ms"] for r in rs])
            p99s = [r["latency"]["p99_ms"] for r in rs]
            missed = (
                f"{sum(r['latency']['missed'] for r in rs)} / "
                f"{sum(r['latency']['probes'] for r in rs)}"
            )
            lines.append(
                f"| {mode['title']} | {fmt(med(tps))} | {fspread(tps)} | {fmt(p50, 2)} | "
                f"{fmt(med(p99s), 2)} | "
                f"{fspread(p99s, 2)} | {missed} |"
            )
        else:
            lines.append(f"| {mode['title']} | {fmt(med(tps))} | {fspread(tps)} | — | — | — | — |")
    for mode in n["modes"]:
        if not mode["delivers"]:
            continue
        rs = n["runs"][mode["name"]]
        p99 = med([r["latency"]["p99_ms"] for r in rs])
        missed = sum(r["latency"]["missed"] for r in rs)
        ok = None if p99 is None else (p99 < GOAL_DELIVERY_P99_MS and missed == 0)
        v = rep.goal(
            f"8. commit-to-listener p99 under load, {mode['name']} mode",
            f"< {GOAL_DELIVERY_P99_MS:.0f} ms, none missed",
            f"{fmt(p99, 1)} ms, {missed} missed",
            ok,
        )
        lines.append("")
        lines.append(
            f"Goal p99 < {GOAL_DELIVERY_P99_MS:.0f} ms with nothing missed, {mode['name']} mode: "
            f"{v}."
        )
    return "\n".join(lines)

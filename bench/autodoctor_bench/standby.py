"""Section ``scale``, second half (item 11): a streaming hot standby under the accept load."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import workloads

from . import cluster
from .stats import fmt, fspread, log, med, ms

if TYPE_CHECKING:
    from .report import Report
    from .runner import Harness


def standby_dsn(h: Harness, port: int) -> str:
    return f"host=127.0.0.1 port={port} user=postgres dbname=bench application_name=bench"


def wait_caught_up(h: Harness, port: int, target_lsn: str, seconds: float = 600.0) -> float:
    """Seconds until the standby has replayed up to ``target_lsn``."""
    t0 = time.monotonic()
    deadline = t0 + seconds
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(psycopg.OperationalError),
            psycopg.connect(standby_dsn(h, port), autocommit=True, connect_timeout=5) as con,
        ):
            while time.monotonic() < deadline:
                done = con.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target_lsn,)
                ).fetchone()
                if done and done[0]:
                    return time.monotonic() - t0
                time.sleep(0.05)
        time.sleep(0.1)
    raise RuntimeError(f"the standby did not replay up to {target_lsn} within {seconds:.0f} s")


@contextlib.contextmanager
def lag_sampler(h: Harness, port: int, interval: float) -> Iterator[dict[str, list[float]]]:
    """While the load runs: every 100 ms the primary's view of the standby
    (pg_stat_replication: replay_lag, bytes not yet replayed), and every ``interval`` s a
    visibility probe: a row committed on the primary, then polled for on the standby
    every 0.5 ms; the delay until a reader there sees it is what read_dsn users get."""
    out: dict[str, list[float]] = {"replay_lag_ms": [], "lag_bytes": [], "visible_ms": []}
    stop = threading.Event()

    def stats() -> None:
        with contextlib.suppress(Exception), h.admin("postgres") as con:
            while not stop.wait(0.1):
                row = con.execute("""
                    SELECT extract(epoch FROM replay_lag) * 1000,
                           pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)
                      FROM pg_stat_replication ORDER BY backend_start DESC LIMIT 1""").fetchone()
                if row:
                    if row[0] is not None:
                        out["replay_lag_ms"].append(float(row[0]))
                    if row[1] is not None:
                        out["lag_bytes"].append(float(row[1]))

    def probe() -> None:
        with (
            contextlib.suppress(Exception),
            h.admin() as prim,
            psycopg.connect(standby_dsn(h, port), autocommit=True) as stby,
        ):
            while not stop.wait(interval):
                (pid,) = prim.execute(
                    "INSERT INTO bench.lag_probe DEFAULT VALUES RETURNING id"
                ).fetchone()  # type: ignore[misc]
                t0 = time.monotonic()
                while time.monotonic() - t0 < 30:
                    if stby.execute(
                        "SELECT 1 FROM bench.lag_probe WHERE id = %s", (pid,)
                    ).fetchone():
                        out["visible_ms"].append((time.monotonic() - t0) * 1000)
                        break
                    time.sleep(0.0005)

    threads = [
        threading.Thread(target=stats, daemon=True),
        threading.Thread(target=probe, daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        yield out
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=35)


def current_lsn(h: Harness) -> str:
    return str(h.sql("SELECT pg_current_wal_lsn()::text", db="postgres")[0][0])


@contextlib.contextmanager
def wal_meter(h: Harness) -> Iterator[dict[str, Any]]:
    """WAL the primary writes while the block runs: start and end LSN, bytes."""
    out: dict[str, Any] = {"start": current_lsn(h)}
    try:
        yield out
    finally:
        out["lsn"] = current_lsn(h)
        out["bytes"] = float(
            h.sql(
                "SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)",
                (out["lsn"], out["start"]),
                db="postgres",
            )[0][0]
        )


@contextlib.contextmanager
def streaming_meter(h: Harness, port: int, interval: float) -> Iterator[dict[str, Any]]:
    with lag_sampler(h, port, interval) as lag, wal_meter(h) as wal:
        yield {"lag": lag, "wal": wal}


def measure(h: Harness) -> dict[str, Any]:
    p = h.prof
    c = p.direct_clients
    h.sql(
        "CREATE TABLE IF NOT EXISTS bench.lag_probe (id bigserial PRIMARY KEY, "
        "at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )
    runs: dict[str, list[dict[str, Any]]] = {"streaming": [], "stopped": []}
    with cluster.standby(h) as sb:
        log(
            f"  standby: base backup in {sb['basebackup_s']:.0f} s, hot standby on port "
            f"{sb['port']}"
        )
        wait_caught_up(h, sb["port"], current_lsn(h))
        for rep in range(p.reps):
            # A: the standby streams while accept runs.
            res = h.accept_run(
                f"r{rep}-standby-streaming-{c}",
                c,
                p.seconds,
                during=streaming_meter(h, sb["port"], p.lag_probe_interval_s),
            )
            meter = res.pop("during")
            res["wal_bytes"] = meter["wal"]["bytes"]
            res["lag"] = {k: sorted(v) for k, v in meter["lag"].items()}
            res["drain_s"] = wait_caught_up(h, sb["port"], meter["wal"]["lsn"])
            runs["streaming"].append(res)
            vis = res["lag"]["visible_ms"]
            log(
                f"  standby rep {rep + 1} streaming@{c}: {res.get('tps') or 0:.0f} tps; visible on "
                "the "
                f"standby p50 {ms(workloads.percentile(vis, 50))} / p99 "
                f"{ms(workloads.percentile(vis, 99))} ms "
                f"({len(vis)} probes); replay_lag p99 "
                f"{ms(workloads.percentile(res['lag']['replay_lag_ms'], 99))} ms"
            )
            # B: the standby is down (its slot keeps the WAL); then it catches up.
            h.run_cmd(sb["stop"], timeout=120)
            res = h.accept_run(f"r{rep}-standby-stopped-{c}", c, p.seconds, during=wal_meter(h))
            wal = res.pop("during")
            res["wal_bytes"] = wal["bytes"]
            t0 = time.monotonic()
            h.run_cmd(sb["start"], timeout=180)
            res["restart_s"] = time.monotonic() - t0
            # Everything written meanwhile (the clean-up after the run included).
            res["catchup_bytes"] = float(
                h.sql(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)",
                    (wal["start"],),
                    db="postgres",
                )[0][0]
            )
            res["catchup_s"] = wait_caught_up(h, sb["port"], current_lsn(h))
            res["catchup_total_s"] = time.monotonic() - t0
            runs["stopped"].append(res)
            log(
                f"  standby rep {rep + 1} stopped@{c}: {res.get('tps') or 0:.0f} tps; "
                f"{res['catchup_bytes'] / 1e6:.1f} MB of WAL replayed in "
                f"{res['catchup_total_s']:.1f} s after restart"
            )
    return {"basebackup_s": sb["basebackup_s"], "clients": c, "runs": runs}


def render(rep: Report) -> str:
    """Item 11, second half: the standby table (empty when the run had no standby)."""
    if rep.missing("scale") is not None:
        return ""
    sb = rep.s["scale"].get("standby")
    if not sb:
        return ""
    st, so = sb["runs"]["streaming"], sb["runs"]["stopped"]
    t_on = [r.get("tps") for r in st]
    t_off = [r.get("tps") for r in so]
    on_off = [a / b for a, b in zip(t_on, t_off, strict=False) if a and b]
    vis = sorted(v for r in st for v in r["lag"]["visible_ms"])
    rlag = sorted(v for r in st for v in r["lag"]["replay_lag_ms"])
    lbytes = sorted(v for r in st for v in r["lag"]["lag_bytes"])
    wal_per_tx = [r["wal_bytes"] / r["transactions"] for r in st + so if r.get("transactions")]
    rates = [
        r.get("catchup_bytes", r["wal_bytes"]) / 1e6 / r["catchup_total_s"]
        for r in so
        if r.get("catchup_total_s")
    ]
    pct = workloads.percentile
    out = [
        "### A streaming hot standby under the accept load",
        "",
        "A hot standby made as `make db-replica` makes one (pg_basebackup with a replication "
        "slot, "
        "`hot_standby = on`; base backup of the whole benchmark cluster in "
        f"{fmt(sb['basebackup_s'])} s), "
        f"then per repetition: accept at {sb['clients']} direct clients (`-M prepared`, as item 1) "
        "with the "
        "standby streaming, and again with the standby stopped (its slot keeps the WAL), after "
        "which it is "
        "started and timed until it has replayed everything. During the streaming runs a probe "
        "commits a "
        "row on the primary every "
        f"{fmt(rep.r['profile'].get('lag_probe_interval_s', 0.2), 1)} s and polls the standby "
        "every 0.5 ms "
        "until a reader there sees it: that delay is what a `read_dsn` dashboard lags behind a "
        "write. "
        "`replay_lag` and the bytes not yet replayed come from the primary's "
        "`pg_stat_replication`, "
        "sampled every 100 ms.",
        "",
        "| figure | median | spread / percentiles |",
        "|---|---:|---:|",
        f"| accept tps, standby streaming | {fmt(med(t_on))} | {fspread(t_on)} |",
        f"| accept tps, standby stopped | {fmt(med(t_off))} | {fspread(t_off)} |",
        f"| streaming / stopped | {fmt(med(on_off), 2)}x | {fspread(on_off, 2)} |",
        f"| write visible on the standby, ms ({len(vis)} probes) | {fmt(pct(vis, 50), 2)} | "
        f"p99 {fmt(pct(vis, 99), 2)}, max {fmt(vis[-1] if vis else None, 2)} |",
        f"| `replay_lag`, ms ({len(rlag)} samples) | {fmt(pct(rlag, 50), 2)} | "
        f"p99 {fmt(pct(rlag, 99), 2)}, max {fmt(rlag[-1] if rlag else None, 2)} |",
        f"| WAL not yet replayed, kB | {fmt(pct(lbytes, 50) / 1024 if lbytes else None, 1)} | "
        f"p99 {fmt(pct(lbytes, 99) / 1024 if lbytes else None, 1)}, max "
        f"{fmt(lbytes[-1] / 1024 if lbytes else None, 1)} |",
        f"| WAL per accept, bytes | {fmt(med(wal_per_tx))} | {fspread(wal_per_tx)} |",
        f"| catch-up after a {fmt(rep.r['profile'].get('seconds'))} s outage: restart + replay, s "
        "| "
        f"{fmt(med([r.get('catchup_total_s') for r in so]), 1)} | "
        f"{fspread([r.get('catchup_total_s') for r in so], 1)} |",
        f"| catch-up rate (restart included), MB/s of WAL | {fmt(med(rates), 1)} | "
        f"{fspread(rates, 1)} |",
        "",
        "WAL per accept is measured over the pgbench run alone (LSN before and after it). Every "
        "run "
        "starts right after a `CHECKPOINT` (as every run of this report does), so it includes the "
        "full-page image of the first change to each page after it: an upper bound for the steady "
        "state, "
        "and the figure to size replication bandwidth with. The catch-up replays everything "
        "written while "
        "the standby was down: the run and the harness's clean-up after it.",
    ]
    return "\n".join(out)

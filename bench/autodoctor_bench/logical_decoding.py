"""Section ``decoding`` (item 8's evaluation): delivery by relays that read the WAL (logical
decoding), measured beside the package's two delivering modes on the same cluster, switched
to wal_level = logical for the section (and back afterwards)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from . import cluster, notify_latency
from .config import DECODING_MODES, DELIVERY_MODES, GOAL_DELIVERY_P99_MS, mode_by_name
from .stats import fmt, fspread, log, med

if TYPE_CHECKING:
    from .runner import Harness

#: The package's delivering modes, then the WAL-reading relays.
PACKAGE_MODES = [m.name for m in DELIVERY_MODES if m.delivers]
MODES = [mode_by_name(n) for n in PACKAGE_MODES] + DECODING_MODES

#: What each needs from the server and beside it.
_WAL_RELAY_NEEDS = (
    "wal_level = logical, a replication slot, a REPLICATION role, wal2json installed (and "
    "allowed, where the server lists output plugins), a running relay"
)
NEEDS = {
    "in_transaction": "nothing (any wal_level, no process)",
    "relay": "a running relay (`autodoctor-db worker` or a driver follower)",
    **{m.name: _WAL_RELAY_NEEDS for m in DECODING_MODES},
}


def hold_seconds(h: Harness) -> float:
    """How long the same-database writer stays open in the held runs: half the run."""
    return round(h.prof.notify_seconds / 2, 1)


def measure(h: Harness) -> dict[str, Any]:
    """Every mode in MODES, interleaved within each repetition, with and without a
    transaction of the same database held open for half the run."""
    runs: dict[str, list[dict[str, Any]]] = {m.name: [] for m in MODES}
    held: dict[str, list[dict[str, Any]]] = {m.name: [] for m in MODES}
    hold = hold_seconds(h)
    with cluster.logical_wal(h) as changed:
        log(f"  decoding: cluster restarted with {changed}")
        # A cold cache after the restart: one discarded run first.
        notify_latency.latency_run(h, MODES[0].name, "decoding-warmup")
        for rep in range(h.prof.reps):
            for mode in MODES:
                entry = notify_latency.latency_run(h, mode.name, f"r{rep}-decoding-{mode.name}")
                runs[mode.name].append(entry)
                log(f"  decoding rep {rep + 1} {mode.name}: "
                    f"{notify_latency.describe(entry)}")  # fmt: skip
                entry = notify_latency.latency_run(
                    h, mode.name, f"r{rep}-decoding-held-{mode.name}", hold_s=hold
                )
                held[mode.name].append(entry)
                log(f"  decoding rep {rep + 1} {mode.name}, writer held {hold:.0f} s: "
                    f"{notify_latency.describe(entry)}")  # fmt: skip
    return {
        "runs": runs,
        "held": held,
        "hold_s": hold,
        "settings": changed,
        "modes": [asdict(m) for m in MODES],
    }


def render(rep: Any) -> str:
    if (msg := rep.missing("decoding")) is not None:
        return msg
    d = rep.s["decoding"]
    settings = ", ".join(f"`{k} = {v}`" for k, v in d["settings"].items())
    lines = [
        f"The same cluster restarted with {settings} for this section only; each run as in "
        "item 8 (8 pgbench clients accepting, a 9th accepting every "
        f"{rep.r['profile']['notify_interval_s'] * 1000:.0f} ms, a listener). The WAL-reading "
        "relays are benchmark code (bench/autodoctor_bench/logical_relay.py: wal2json "
        "streamed by pg_recvlogical, one NOTIFY transaction per batch received), not part of "
        'the package. "Writer held": the same runs while a transaction of the same database '
        f"holds a transaction id for {d['hold_s']:.0f} s from the run's first second on "
        "(a batch job or a migration); it writes nothing the listener waits for. WAL fsyncs "
        "and bytes per accept: the whole cluster's (`pg_stat_wal`, the relays' own NOTIFY "
        "transactions included) over the run, divided by the accepts (pgbench's and the "
        "probes'); per accept rather than per commit because a listener's backend commits a "
        "transaction of its own each time it is signalled.",
        "",
        "| delivery | accept tps @8 (median) | spread | WAL fsyncs per accept | WAL bytes per "
        "accept | latency p50 ms | p99 ms | missed | p99 ms, writer held | missed, writer held "
        "| needs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for mode in d["modes"]:
        name = mode["name"]
        rs, hs = d["runs"][name], d["held"][name]
        tps = [r["pgbench"]["tps"] for r in rs]
        fsyncs = med([r["fsyncs_per_accept"] for r in rs])
        wal = med([r["wal_bytes_per_accept"] for r in rs])
        p50 = med([r["latency"]["p50_ms"] for r in rs])
        p99 = med([r["latency"]["p99_ms"] for r in rs])
        missed = sum(r["latency"]["missed"] for r in rs)
        probes = sum(r["latency"]["probes"] for r in rs)
        hp99 = med([r["latency"]["p99_ms"] for r in hs])
        hmissed = sum(r["latency"]["missed"] for r in hs)
        hprobes = sum(r["latency"]["probes"] for r in hs)
        lines.append(
            f"| `{name}`: {mode['title']} | {fmt(med(tps))} | {fspread(tps)} | {fmt(fsyncs, 2)} "
            f"| {fmt(wal)} | {fmt(p50, 2)} | {fmt(p99, 2)} | {missed} / {probes} | "
            f"{fmt(hp99, 1)} | {hmissed} / {hprobes} | {NEEDS.get(name, '')} |"
        )
    goal = GOAL_DELIVERY_P99_MS
    for name in PACKAGE_MODES:
        hs = d["held"].get(name, [])
        if not hs:
            continue
        p99 = med([r["latency"]["p99_ms"] for r in hs])
        missed = sum(r["latency"]["missed"] for r in hs)
        rep.goal(
            f"8. commit-to-listener p99 with a same-database writer held {d['hold_s']:.0f} s, "
            f"{name} mode",
            f"< {goal:.0f} ms, none missed",
            f"{fmt(p99, 1)} ms, {missed} missed",
            None if p99 is None else (p99 < goal and missed == 0),
        )
    ok = [
        m["name"]
        for m in d["modes"]
        if all(
            (r["latency"]["p99_ms"] or 1e9) < goal and r["latency"]["missed"] == 0
            for r in d["runs"][m["name"]] + d["held"][m["name"]]
        )
    ]
    lines += [
        "",
        f"Modes with every run's p99 under {goal:.0f} ms and nothing missed, with and without "
        f"the held writer: {', '.join(f'`{n}`' for n in ok) or 'none'}. Latency here is the "
        "NOTIFY's: a listener that reads each event by the payload's ids sees it then. A "
        "follower that reads the log by cursor (`db.events()`) reads only below "
        "`event_watermark()`, which passes a running transaction that has logged no event "
        "(tests/python/contract/test_events.py), so the held writer does not delay it either.",
    ]
    return "\n".join(lines)

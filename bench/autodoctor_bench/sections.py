"""The sections of a run, in run order (``bench/run --only`` takes these names), and the
placeholders of bench/BENCHMARKS.md.in that their render functions fill, in render order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import (
    accept_throughput,
    contention,
    counters,
    dashboards,
    driver,
    logical_decoding,
    notify_latency,
    orphan_dispatch,
    peer,
    pooler,
    profiles,
    realtime_cost,
    standby,
)

if TYPE_CHECKING:
    from .report import Report
    from .runner import Harness


def measure_scale(h: Harness) -> dict[str, Any]:
    """Item 11: pgbouncer fan-in, then a streaming hot standby (one section: ``scale``)."""
    res = pooler.measure(h)
    res["standby"] = standby.measure(h)
    return res


def render_scale(rep: Report) -> str:
    text = pooler.render(rep)
    more = standby.render(rep)
    return text + ("\n\n" + more if more else "")


SECTIONS: dict[str, Callable[[Harness], dict[str, Any]]] = {
    "dashboards": dashboards.measure,
    "matrix": accept_throughput.measure,
    "python": driver.measure,
    "contention": contention.measure,
    "notify": notify_latency.measure,
    "decoding": logical_decoding.measure,
    "realtime": realtime_cost.measure,
    "counters": counters.measure,
    "dispatch": orphan_dispatch.measure,
    "peer": peer.measure,
    "scale": measure_scale,
    "profile": profiles.measure,
}

RENDERERS: list[tuple[str, Callable[[Report], str]]] = [
    ("all_runs", accept_throughput.render_runs),
    ("accept_vs_tpcb", accept_throughput.render_vs_tpcb),
    ("accept_vs_bare", accept_throughput.render_vs_bare),
    ("counters", counters.render),
    ("driver_vs_client_flow", driver.render_vs_client_flow),
    ("contention", contention.render),
    ("create_and_intake", accept_throughput.render_create_and_intake),
    ("dashboards", dashboards.render),
    ("orphan_dispatch", orphan_dispatch.render),
    ("notify_latency", notify_latency.render),
    ("notify_lock", accept_throughput.render_notify_lock),
    ("logical_decoding", logical_decoding.render),
    ("realtime_cost", realtime_cost.render),
    ("driver_overhead", driver.render_overhead),
    ("peer", peer.render),
    ("beyond_one_server", render_scale),
    ("profiles", profiles.render),
]

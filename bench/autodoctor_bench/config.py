"""What a run measures: profiles, delivery modes, the issue's goals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent  # bench/: sql/, pgbench/, loadgen.py, templates


@dataclass(frozen=True)
class Profile:
    """Volumes, durations and repetitions of one run of the harness."""

    name: str
    reps: int = 3
    seconds: float = 6.0  # one pgbench throughput run
    py_seconds: float = 5.0  # one Python load-generator run
    # item 6 volumes
    customers: int = 50_000
    mechanics: int = 5_000
    online: int = 1_000
    requests: int = 1_000_000
    sessions: int = 100_000
    pending: int = 50_000
    pgbench_scale: int = 32
    accept_clients: tuple[int, ...] = (1, 8, 32)
    notify_clients: tuple[int, ...] = (8, 32, 64)
    dashboard_queries: int = 1_000  # per view and repetition, unless dashboard_seconds runs out
    dashboard_seconds: float = 4.0
    contention_clients: int = 32
    contention_hot: int = 4
    contention_rounds: int = 150
    notify_seconds: float = 6.0
    notify_interval_s: float = 0.01
    overhead_calls: int = 400
    overhead_rounds: int = 5
    dispatch_orphans: int = 10_000
    dispatch_mechanics: int = 1_000
    dispatch_capacity: int = 20
    profile_seconds: float = 5.0
    # item 11 (beyond one server)
    pooled_clients: tuple[int, ...] = (8, 64, 400)
    direct_clients: int = 8
    lag_probe_interval_s: float = 0.2


FULL = Profile(name="full")
QUICK = Profile(
    name="quick",
    reps=2,
    seconds=2.0,
    py_seconds=2.0,
    customers=5_000,
    mechanics=500,
    online=100,
    requests=100_000,
    sessions=10_000,
    pending=5_000,
    pgbench_scale=8,
    dashboard_queries=200,
    dashboard_seconds=1.0,
    contention_rounds=30,
    notify_seconds=2.0,
    overhead_calls=100,
    overhead_rounds=3,
    dispatch_orphans=2_000,
    dispatch_mechanics=200,
    profile_seconds=2.0,
)


@dataclass(frozen=True)
class DeliveryMode:
    """One way of broadcasting session events; the NOTIFY sections run every mode listed.

    ``setup`` (SQL, as the owner, in the bench database) selects the mode and ``teardown``
    restores the default; ``relay``, if set, is a command started for the mode's runs and
    stopped after them ({python}, {dsn}, {root} and {pgbin} are filled in). A mode that does not
    deliver (a lower bound) gets throughput only.
    """

    name: str
    title: str
    setup: tuple[str, ...] = ()
    teardown: tuple[str, ...] = ()
    relay: tuple[str, ...] | None = None
    delivers: bool = True


DELIVERY_MODES: list[DeliveryMode] = [
    DeliveryMode(
        name="in_transaction",
        title="NOTIFY in the writing transaction (the current default)",
    ),
    DeliveryMode(
        name="no_notify",
        title="no broadcast at all: trigger session_events_notify disabled (a lower bound; "
        "delivers nothing)",
        setup=("ALTER TABLE autodoctor.session_events DISABLE TRIGGER session_events_notify",),
        teardown=("ALTER TABLE autodoctor.session_events ENABLE TRIGGER session_events_notify",),
        delivers=False,
    ),
    DeliveryMode(
        name="relay",
        title="event row only; relay_events() sends the same per-event NOTIFYs in one "
        "transaction per batch, from the worker every 10 ms",
        setup=("SELECT autodoctor.set_notify_mode('relay')",),
        teardown=("SELECT autodoctor.set_notify_mode('transaction')",),
        relay=(
            "{python}",
            "-m",
            "autodoctor_db",
            "--dsn",
            "{dsn}",
            "worker",
            "--maintenance",
            "never",
            "--poll",
            "3600",
            "--smtp-port",
            "1",
        ),
    ),
]
DEFAULT_MODE = DELIVERY_MODES[0].name

_NOTIFY_TRIGGER = "ALTER TABLE autodoctor.session_events {} TRIGGER session_events_notify"
_LOGICAL_RELAY = (
    "{python}",
    "{root}/bench/autodoctor_bench/logical_relay.py",
    "--dsn",
    "{dsn}",
    "--pgbin",
    "{pgbin}",
    "--kind",
)

#: Section ``decoding``: relays that read the WAL (logical decoding), not part of the
#: package, measured beside the package's two delivering modes on a cluster switched to
#: wal_level = logical for the section.
DECODING_MODES: list[DeliveryMode] = [
    DeliveryMode(
        name="logical_message",
        title="the writer emits pg_logical_emit_message(true, 'autodoctor', payload) instead "
        "of a NOTIFY; a relay streams the messages (wal2json over pg_recvlogical) and sends "
        "the NOTIFYs, one transaction per batch",
        setup=(
            _NOTIFY_TRIGGER.format("DISABLE"),
            "CREATE TRIGGER bench_emit_event_message AFTER INSERT ON autodoctor.session_events "
            "FOR EACH ROW EXECUTE FUNCTION bench.emit_event_message()",
        ),
        teardown=(
            "DROP TRIGGER bench_emit_event_message ON autodoctor.session_events",
            _NOTIFY_TRIGGER.format("ENABLE"),
        ),
        relay=(*_LOGICAL_RELAY, "messages"),
    ),
    DeliveryMode(
        name="logical_rows",
        title="the writer only logs; a relay streams the event rows' inserts (wal2json over "
        "pg_recvlogical) and sends the NOTIFYs, one transaction per batch",
        setup=(_NOTIFY_TRIGGER.format("DISABLE"),),
        teardown=(_NOTIFY_TRIGGER.format("ENABLE"),),
        relay=(*_LOGICAL_RELAY, "rows"),
    ),
]


def mode_by_name(name: str) -> DeliveryMode:
    return next(m for m in [*DELIVERY_MODES, *DECODING_MODES] if m.name == name)


DIAG_VIEW = "incoming_requests (diagnostic: jit off, created_at index order)"
DIAG_SETTINGS = (
    "SET LOCAL jit = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; "
)

# Goals from the issue.
#: Pool request numbers from here on have time-ordered ids (Harness.ensure_pool(ordered=True)).
ORDERED_POOL_BASE = 1_000_000_000
GOAL_ACCEPT_VS_TPCB = 0.70
GOAL_ACCEPT_VS_BARE = 0.65
GOAL_VS_CLIENT_FLOW = 1.20
GOAL_CONTENTION_P99_MS = 20.0
GOAL_DASHBOARD_P99_MS = 2.0
GOAL_DELIVERY_P99_MS = 50.0
GOAL_VS_PEER = 1.0
GOAL_CREATE_VS_ACCEPT = 0.5
GOAL_DISPATCH_ROWS_S = 5000.0
GOAL_DRIVER_OVERHEAD = 1.15
GOAL_POOLED_VS_DIRECT = 0.90
# Item 11's two ways of sending the accept transaction: (pgbench script, title).
POOL_STYLES: dict[str, tuple[str, str]] = {
    "driver": (
        "accept_pipelined.sql",
        "pipelined, one round trip per transaction, as the autodoctor_db driver sends it",
    ),
    "postgrest": (
        "accept.sql",
        "four round trips per transaction: BEGIN, claims, call, COMMIT, as PostgREST sends it",
    ),
}

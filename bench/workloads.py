"""bench/workloads.py: the operations the load generator (bench/loadgen.py) times: each
``op_*(spec, w)`` opens worker w's connection and returns a function doing operation k.

Ids are reproducible from a kind and a number, as in bench/sql/dataset.sql:
``uid("pool", n)`` is md5('bench-pool-' || n)::uuid. Imports beyond psycopg happen inside the
operations that need them (the Procrastinate peer runs under a virtualenv of its own).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

SET_CALLER = (
    "SELECT set_config('role', %(role)s, true), set_config('request.jwt.claims', %(claims)s, true)"
)
RAW_ACCEPT = "SELECT * FROM autodoctor.accept_session_request(request_id => %(request_id)s::uuid)"

# The original app's accept (client side, before this package): two autocommit statements
# in two round trips, no guard beyond the status, no event, no broadcast, not atomic.
CLIENT_FLOW_UPDATE = """
UPDATE autodoctor.session_requests
   SET status = 'accepted', mechanic_id = %(mechanic_id)s, accepted_at = now(), updated_at = now()
 WHERE id = %(request_id)s AND status = 'pending'
RETURNING id, customer_id, customer_email, plan_code, session_type, intake_id
"""
CLIENT_FLOW_INSERT = """
INSERT INTO autodoctor.sessions
    (mechanic_id, customer_user_id, customer_email, plan, type, status, intake_id,
     scheduled_start, scheduled_for, request_id, metadata)
VALUES (%(mechanic_id)s, %(customer_id)s, %(customer_email)s, %(plan_code)s, %(session_type)s,
        'waiting', %(intake_id)s, now(), now(), %(request_id)s, '{"source": "client"}')
"""


def uid(kind: str, n: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"bench-{kind}-{n}".encode()).hexdigest())


def claims(user: uuid.UUID) -> str:
    return json.dumps({"sub": str(user), "role": "authenticated"})


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies: list[float]) -> dict[str, float | None]:
    """Latency percentiles in milliseconds."""
    ms = [x * 1000 for x in latencies]
    return {
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else None,
        "mean_ms": statistics.fmean(ms) if ms else None,
    }


# --- one operation per workload: (spec, worker index) -> op(i) -----------------------------


def op_raw_accept(spec: dict[str, Any], w: int) -> Callable[[int], int]:
    conn = psycopg.connect(spec["dsn"])
    nmech, base, clients = spec["nmech"], spec["base"], spec["clients"]

    def op(i: int) -> int:
        n = base + w + clients * i
        with conn.transaction():
            conn.execute(
                SET_CALLER, {"role": "authenticated", "claims": claims(uid("mech", n % nmech))}
            )
            conn.execute(RAW_ACCEPT, {"request_id": str(uid("pool", n))}).fetchone()
        return n

    return op


def op_driver_accept(spec: dict[str, Any], w: int) -> Callable[[int], int]:
    import autodoctor_db as ad

    db = ad.connect(spec["dsn"], min_size=1, max_size=1)
    nmech, base, clients = spec["nmech"], spec["base"], spec["clients"]

    def op(i: int) -> int:
        n = base + w + clients * i
        with db.as_user(uid("mech", n % nmech)) as mechanic:
            mechanic.accept_session_request(uid("pool", n))
        return n

    return op


def op_client_flow(spec: dict[str, Any], w: int) -> Callable[[int], int]:
    conn = psycopg.connect(spec["admin_dsn"], autocommit=True)
    nmech, base, clients = spec["nmech"], spec["base"], spec["clients"]

    def op(i: int) -> int:
        n = base + w + clients * i
        mechanic = uid("mech", n % nmech)
        row = conn.execute(
            CLIENT_FLOW_UPDATE, {"mechanic_id": mechanic, "request_id": uid("pool", n)}
        ).fetchone()
        if row is None:
            raise RuntimeError("request was not pending")
        conn.execute(
            CLIENT_FLOW_INSERT,
            {
                "mechanic_id": mechanic,
                "customer_id": row[1],
                "customer_email": row[2],
                "plan_code": row[3],
                "session_type": row[4],
                "intake_id": row[5],
                "request_id": row[0],
            },
        )
        return n

    return op


def op_driver_create_accept(spec: dict[str, Any], w: int) -> Callable[[int], int]:
    import autodoctor_db as ad

    db = ad.connect(spec["dsn"], min_size=1, max_size=1)
    nmech, ncust, base, clients = spec["nmech"], spec["ncust"], spec["base"], spec["clients"]

    def op(i: int) -> int:
        n = base + w + clients * i
        with db.as_user(uid("cust", n % ncust)) as customer:
            request = customer.create_session_request("video", "free", notes="Brakes squeal.")
        with db.as_user(uid("mech", n % nmech)) as mechanic:
            mechanic.accept_session_request(request.id)
        return n

    return op


def op_procrastinate(spec: dict[str, Any], w: int) -> Callable[[int], int]:
    import procrastinate
    from procrastinate import jobs, sql

    connector = procrastinate.SyncPsycopgConnector(conninfo=spec["dsn"], min_size=1, max_size=1)
    app = procrastinate.App(connector=connector)
    app.open()
    worker_id = connector.execute_query_one(query=sql.queries["register_worker"])["worker_id"]
    base, clients = spec["base"], spec["clients"]

    def op(i: int) -> int:
        n = base + w + clients * i
        app.job_manager.defer_job(
            jobs.Job(
                id=None,
                queue="default",
                lock=None,
                queueing_lock=None,
                task_name="bench.task",
                task_kwargs={"n": n},
            )
        )
        row = connector.execute_query_one(
            query=sql.queries["fetch_job"], queues=None, worker_id=worker_id
        )
        if row["id"] is None:
            raise RuntimeError("fetch_job found no job")
        return n

    return op


OPS: dict[str, Callable[[dict[str, Any], int], Callable[[int], int]]] = {
    "raw_accept": op_raw_accept,
    "driver_accept": op_driver_accept,
    "client_flow": op_client_flow,
    "driver_create_accept": op_driver_create_accept,
    "procrastinate": op_procrastinate,
}

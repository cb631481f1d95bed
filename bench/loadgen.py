"""bench/loadgen.py: the Python side of the benchmarks, one workload per invocation.

    python bench/loadgen.py '{"workload": "driver_accept", "clients": 8, "seconds": 5, ...}'

Prints one JSON object (the result) on its last line of output. Every workload runs
``clients`` worker processes (fork; one connection each, so the GIL never serialises the
clients), starts them together on a barrier, stops them after ``seconds`` and reports
operations, throughput, latency percentiles and errors by SQLSTATE. Only localhost is
ever contacted: the DSNs come from bench/harness.py, which points them at its own cluster.

Ids are reproducible from a kind and a number, as in bench/sql/dataset.sql:
``uid("pool", n)`` is md5('bench-pool-' || n)::uuid. Worker w of c takes pool numbers
base + w, base + w + c, base + w + 2c, ... so every accept hits its own pending request.

Runs under the project's virtualenv (psycopg 3, the autodoctor_db driver) and, for the
Procrastinate peer, under a separate virtualenv that has procrastinate (and psycopg) only:
imports beyond psycopg happen inside the workloads that need them.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import statistics
import sys
import time
import traceback
import uuid
from collections import Counter
from typing import Any

import psycopg

# bench/ is this script's directory, so its sibling module imports as a top-level one.
from workloads import OPS, RAW_ACCEPT, SET_CALLER, claims, summary, uid


def sqlstate_of(exc: BaseException) -> str:
    """The SQLSTATE behind an exception (the driver keeps psycopg's error as __cause__)."""
    seen: BaseException | None = exc
    while seen is not None:
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state:
            return state
        seen = seen.__cause__
    return type(exc).__name__


def _throughput_worker(spec: dict[str, Any], w: int, barrier: Any, queue: Any) -> None:
    result: dict[str, Any] = {"ops": 0, "lat": [], "errors": {}, "max_n": None, "fatal": None}
    try:
        op = OPS[spec["workload"]](spec, w)
    except BaseException:  # setup failed: release the others, report why
        result["fatal"] = traceback.format_exc()
        barrier.abort()
        queue.put(result)
        return
    errors: Counter[str] = Counter()
    lat: list[float] = []
    try:
        barrier.wait(timeout=120)
        start = time.monotonic()
        deadline = start + spec["seconds"]
        i = 0
        while True:
            t0 = time.monotonic()
            if t0 >= deadline or i >= spec.get("max_ops_per_client", 10**9):
                break
            try:
                result["max_n"] = op(i)
                lat.append(time.monotonic() - t0)
            except Exception as exc:  # counted by SQLSTATE; more than a few ends the run
                errors[sqlstate_of(exc)] += 1
                if sum(errors.values()) > spec.get("max_errors", 20):
                    result["fatal"] = traceback.format_exc()
                    break
            i += 1
        result["elapsed"] = time.monotonic() - start
        result["ops"] = len(lat)
        result["ops_attempted"] = i
    except BaseException:
        result["fatal"] = traceback.format_exc()
    result["lat"] = lat
    result["errors"] = dict(errors)
    queue.put(result)


def run_throughput(spec: dict[str, Any]) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    clients = spec["clients"]
    barrier = ctx.Barrier(clients)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_throughput_worker, args=(spec, w, barrier, queue), daemon=True)
        for w in range(clients)
    ]
    for p in procs:
        p.start()
    parts = [queue.get(timeout=spec["seconds"] + 300) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    fatal = [p["fatal"] for p in parts if p["fatal"]]
    lat = [x for p in parts for x in p["lat"]]
    errors: Counter[str] = Counter()
    for p in parts:
        errors.update(p["errors"])
    elapsed = statistics.fmean([p.get("elapsed", spec["seconds"]) for p in parts])
    ops = sum(p["ops"] for p in parts)
    # Highest pool number any worker may have taken (attempted ones included).
    attempted = max((p.get("ops_attempted", 0) for p in parts), default=0)
    return {
        "workload": spec["workload"],
        "clients": clients,
        "ops": ops,
        "elapsed_s": elapsed,
        "ops_per_s": ops / elapsed if elapsed else None,
        "errors": dict(errors),
        "fatal": fatal[0] if fatal else None,
        "next_base": spec.get("base", 0) + clients * (attempted + 1),
        **summary(lat),
    }


# --- driver overhead: one client, driver and raw psycopg interleaved in blocks -----------


def run_overhead(spec: dict[str, Any]) -> dict[str, Any]:
    """Per-call latency of the driver's accept against raw psycopg, A B A B in one process."""
    import autodoctor_db as ad

    db = ad.connect(spec["dsn"], min_size=1, max_size=1)
    conn = psycopg.connect(spec["dsn"])
    nmech, n = spec["nmech"], spec["base"]
    rounds: list[dict[str, Any]] = []

    def driver_call(k: int) -> None:
        with db.as_user(uid("mech", k % nmech)) as mechanic:
            mechanic.accept_session_request(uid("pool", k))

    def raw_call(k: int) -> None:
        with conn.transaction():
            conn.execute(
                SET_CALLER, {"role": "authenticated", "claims": claims(uid("mech", k % nmech))}
            )
            conn.execute(RAW_ACCEPT, {"request_id": str(uid("pool", k))}).fetchone()

    # Warm both paths up (prepared statements, caches) before measuring.
    for _ in range(spec["warmup"]):
        driver_call(n)
        n += 1
        raw_call(n)
        n += 1
    for _ in range(spec["rounds"]):
        entry: dict[str, Any] = {}
        for name, call in (("driver", driver_call), ("raw", raw_call)):
            lat = []
            for _ in range(spec["calls"]):
                t0 = time.perf_counter()
                call(n)
                lat.append(time.perf_counter() - t0)
                n += 1
            entry[name] = {
                "median_ms": statistics.median(lat) * 1000,
                "mean_ms": statistics.fmean(lat) * 1000,
            }
        entry["ratio_median"] = entry["driver"]["median_ms"] / entry["raw"]["median_ms"]
        entry["ratio_mean"] = entry["driver"]["mean_ms"] / entry["raw"]["mean_ms"]
        rounds.append(entry)
    db.close()
    conn.close()
    return {"workload": "overhead", "rounds": rounds, "next_base": n}


# --- contention: many clients racing for a handful of hot requests ------------------------


def run_contention(spec: dict[str, Any]) -> dict[str, Any]:
    """Rounds of ``clients`` simultaneous accepts on ``hot`` pending requests.

    One process, one event loop, one connection per client (psycopg's async connections):
    every round fires all clients' transactions at the same instant (client w goes for hot
    request w mod hot), so each request has clients/hot contenders and exactly one winner;
    the losers get PT409. Each transaction (role and claims, then the accept) goes in one
    flight, and its latency runs from sending it to its commit or error. A
    single client process keeps the 2 cores for the server rather than for 32 Python
    processes.
    """
    import asyncio

    async def main() -> dict[str, Any]:
        clients, hot = spec["clients"], spec["hot"]
        conns = [
            await psycopg.AsyncConnection.connect(spec["dsn"], autocommit=True)
            for _ in range(clients)
        ]
        mechanics = [claims(uid("mech", spec["mech_base"] + w)) for w in range(clients)]
        win: list[float] = []
        lost: list[float] = []
        other: list[list[str]] = []

        async def attempt(w: int, request: uuid.UUID) -> None:
            conn = conns[w]
            # The whole transaction in one flight (simple protocol, literals generated here),
            # so the client's own per-statement overhead stays out of the race.
            # (A multi-statement simple query is one implicit transaction: committed at its
            # end, rolled back on the first error; set_config(..., true) is local to it.)
            text = (
                "SELECT set_config('role', 'authenticated', true), "
                f"set_config('request.jwt.claims', '{mechanics[w]}', true); "
                f"SELECT * FROM autodoctor.accept_session_request(request_id => '{request}'::uuid)"
            )
            t0 = time.perf_counter()
            try:
                await conn.execute(text.encode())
                win.append(time.perf_counter() - t0)
            except psycopg.Error as exc:
                elapsed = time.perf_counter() - t0
                if exc.sqlstate == "PT409":
                    lost.append(elapsed)
                else:
                    other.append([str(exc.sqlstate), str(exc)[:200]])

        warmup = spec.get("warmup", 0)
        t_start = time.monotonic()
        for r in range(warmup + spec["rounds"]):
            if r == warmup:  # the first rounds warm the backends up (plan caches); not counted
                win.clear()
                lost.clear()
                t_start = time.monotonic()
            requests = [uid(spec["kind"], spec["hot_base"] + r * hot + h) for h in range(hot)]
            await asyncio.gather(*(attempt(w, requests[w % hot]) for w in range(clients)))
        wall = time.monotonic() - t_start
        for conn in conns:
            await conn.close()
        return {"win": win, "lost": lost, "other": other, "wall_s": wall}

    res = asyncio.run(main())
    return {
        "workload": "contention",
        "clients": spec["clients"],
        "rounds": spec["rounds"],
        "hot": spec["hot"],
        "wall_s": res["wall_s"],
        "winners": len(res["win"]),
        "pt409": len(res["lost"]),
        "other_errors": len(res["other"]),
        "other_examples": res["other"][:5],
        "fatal": None,
        "win": summary(res["win"]),
        "lost": summary(res["lost"]),
    }


# --- NOTIFY delivery: commit-to-listener latency of probe accepts -------------------------


def _listener(spec: dict[str, Any], ready: Any, queue: Any) -> None:
    """LISTEN on channel autodoctor; note when each event id is first announced.

    A payload with "event_id" announces that event; one with "max_event_id" (a batched
    delivery mode) announces every event up to that id.
    """
    notes: list[tuple[float, int, int]] = []
    try:
        with psycopg.connect(spec["dsn"], autocommit=True) as conn:
            conn.execute("LISTEN autodoctor")
            ready.set()
            stop_at = time.monotonic() + spec["seconds"] + spec["grace"]
            previous_max = 0
            while time.monotonic() < stop_at:
                for note in conn.notifies(timeout=0.2):
                    t = time.monotonic()
                    data = json.loads(note.payload)
                    if "event_id" in data:
                        event = int(data["event_id"])
                        notes.append((t, event, event))
                    elif "max_event_id" in data:
                        top = int(data["max_event_id"])
                        notes.append((t, previous_max + 1, top))
                        previous_max = max(previous_max, top)
                    if time.monotonic() >= stop_at:
                        break
        queue.put({"notes": notes, "fatal": None})
    except BaseException:
        ready.set()
        queue.put({"notes": notes, "fatal": traceback.format_exc()})


def _probe(spec: dict[str, Any], ready: Any, queue: Any) -> None:
    """Accept at a steady rate; note each accept's event id and when its commit returned."""
    probes: list[tuple[int, float]] = []
    try:
        conn = psycopg.connect(spec["dsn"])
        ready.wait(30)
        time.sleep(0.5)  # let the background load reach its pace
        n = spec["base"]
        deadline = time.monotonic() + spec["seconds"] - 1.0
        while time.monotonic() < deadline:
            t_start = time.monotonic()
            mechanic = uid("mech", n % spec["nmech"])
            with conn.transaction():
                conn.execute(SET_CALLER, {"role": "authenticated", "claims": claims(mechanic)})
                conn.execute(RAW_ACCEPT, {"request_id": str(uid("pool", n))}).fetchone()
                row = conn.execute(
                    "SELECT max(id) FROM autodoctor.session_events WHERE request_id = %s",
                    (uid("pool", n),),
                ).fetchone()
            probes.append((int(row[0]), time.monotonic()))
            n += 1
            time.sleep(max(0.0, spec["interval_s"] - (time.monotonic() - t_start)))
        queue.put({"probes": probes, "next_base": n, "fatal": None})
    except BaseException:
        queue.put(
            {
                "probes": probes,
                "next_base": spec["base"] + len(probes) + 1,
                "fatal": traceback.format_exc(),
            }
        )


def run_notify_latency(spec: dict[str, Any]) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    lq, pq = ctx.Queue(), ctx.Queue()
    listener = ctx.Process(target=_listener, args=(spec, ready, lq), daemon=True)
    probe = ctx.Process(target=_probe, args=(spec, ready, pq), daemon=True)
    listener.start()
    probe.start()
    p = pq.get(timeout=spec["seconds"] + 120)
    lres = lq.get(timeout=spec["seconds"] + spec["grace"] + 120)
    listener.join(timeout=10)
    probe.join(timeout=10)
    exact: dict[int, float] = {}
    ranges: list[tuple[float, int, int]] = []
    for t, lo, hi in lres["notes"]:
        if lo == hi:
            exact.setdefault(lo, t)
        else:
            ranges.append((t, lo, hi))
    ranges.sort()
    lat: list[float] = []
    missed = 0
    for event, t_commit in p["probes"]:
        t_seen = exact.get(event)
        if t_seen is None:
            t_seen = next((t for t, lo, hi in ranges if lo <= event <= hi), None)
        if t_seen is None:
            missed += 1
        else:
            lat.append(t_seen - t_commit)
    return {
        "workload": "notify_latency",
        "probes": len(p["probes"]),
        "delivered": len(lat),
        "missed": missed,
        "notifications": len(lres["notes"]),
        "fatal": p["fatal"] or lres["fatal"],
        "next_base": p["next_base"],
        **summary(lat),
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    workload = spec["workload"]
    if workload == "overhead":
        result = run_overhead(spec)
    elif workload == "contention":
        result = run_contention(spec)
    elif workload == "notify_latency":
        result = run_notify_latency(spec)
    else:
        result = run_throughput(spec)
    result["pid"] = os.getpid()
    sys.stdout.flush()
    print(json.dumps(result))


if __name__ == "__main__":
    main()

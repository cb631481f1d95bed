"""The Harness: connections, the data set, pgbench and the Python load generator, the pool
of pending requests that accepts consume, and the loop over the sections.

Started by bench/run, which owns the throwaway cluster (scripts/cluster.sh: created,
deployed into database bench_template with sqitch, torn down afterwards). ``Harness.run``:

1. clones bench_template into ``bench`` and loads realistic volumes (bench/sql/), and
   initialises pgbench's own database for the tpcb-like baseline;
2. runs the sections (``sections.SECTIONS``), each repeated ``reps`` times, the variants of
   a comparison interleaved within every repetition (A B A B), so a ratio is always taken
   between runs minutes apart on the same server;
3. stores every raw number in results.json beside the pgbench logs, and renders
   bench/BENCHMARKS.md.in into BENCHMARKS.md at the repository root (``report``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import glob
import json
import os
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
import workloads

from . import dataset, report, sections
from .config import BENCH, DEFAULT_MODE, ORDERED_POOL_BASE, Profile, mode_by_name
from .stats import log


def children_cpu_s() -> float:
    """CPU seconds used so far by the finished child processes (pgbench runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Harness:
    """The benchmark run: shared helpers for the sections (``sections.SECTIONS``)."""

    def __init__(self, args: argparse.Namespace, prof: Profile) -> None:
        self.args = args
        self.prof = prof
        self.port = args.port
        self.out = Path(args.out)
        self.root = Path(args.root)
        self.pgbin = Path(args.pgbin)
        self.py = sys.executable
        (self.out / "pgbench").mkdir(parents=True, exist_ok=True)
        self.results: dict[str, Any] = {
            "profile": asdict(prof),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "sections": {},
            "errors": {},
            "only": args.only,
        }
        self.pool_next = 0  # next unused pool request number
        self.pool_top = 0  # pool requests 0 .. pool_top-1 exist
        # The same for the pool of time-ordered ids (numbers from ORDERED_POOL_BASE on).
        self.ordered_next = ORDERED_POOL_BASE
        self.ordered_top = ORDERED_POOL_BASE
        self.hot_top = 0
        self.rate: dict[str, float] = {}  # highest accepts/s seen per workload key
        self.mode = DEFAULT_MODE

    # --- connections -----------------------------------------------------------------

    def dsn(self, db: str = "bench", user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={user} dbname={db} application_name=bench"

    @contextlib.contextmanager
    def admin(self, db: str = "bench") -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self.dsn(db), autocommit=True) as conn:
            yield conn

    def sql(self, query: str, params: Any = None, db: str = "bench") -> list[tuple[Any, ...]]:
        with self.admin(db) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def psql_file(self, db: str, path: Path, **variables: Any) -> str:
        cmd = [
            str(self.pgbin / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            db,
        ]
        for key, value in variables.items():
            cmd += ["-v", f"{key}={value}"]
        cmd += ["-f", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"psql -f {path.name} failed:\n{proc.stderr[-3000:]}")
        return proc.stdout

    # --- set-up ----------------------------------------------------------------------

    def run_cmd(
        self, cmd: list[str], timeout: float, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(cmd)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    # --- the pool of pending requests that accepts consume -----------------------------

    def ensure_pool(self, count: int, ordered: bool = False) -> int:
        """Make sure pool requests pool_next .. pool_next+count-1 exist; return pool_next.

        The pool's requests have random ids (``bench.uid``), as every request made before
        change time_ordered_ids has, and the dataset's. With ``ordered``, the numbers
        start at ORDERED_POOL_BASE and the ids are time-ordered (``bench.uid_ordered``), as
        create_session_request gives them now; a script reaches them through
        ``counters.ordered_script``.

        They are stamped as fanned out already (``notification_sent_at``), like the
        dataset's pending requests: the accept runs measure the accept, and a worker
        started for a delivery mode (the relay) must not spend them fanning out e-mails to
        tens of thousands of requests the runs without a worker never fan out (its long
        fan-out transactions also held the relay's mark back: p50 50-300 ms)."""
        nxt, top = (
            (self.ordered_next, self.ordered_top) if ordered else (self.pool_next, self.pool_top)
        )
        need_top = nxt + count
        if need_top > top:
            new_top = need_top + max(count, 20_000)
            with self.admin() as conn, conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute(
                    """
                    INSERT INTO autodoctor.session_requests
                        (id, customer_id, session_type, plan_code, status, customer_name,
                         customer_email, notes, expires_at, notification_sent_at)
                    SELECT CASE WHEN %(ordered)s THEN bench.uid_ordered('pool', n)
                                ELSE bench.uid('pool', n) END,
                           bench.uid('cust', n %% %(ncust)s), 'video', 'free',
                           'pending', 'Customer ' || n %% %(ncust)s,
                           'customer' || n %% %(ncust)s || '@example.test',
                           'Brakes squeal when cold.', now() + interval '24 hours', now()
                      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS n""",
                    {"ncust": self.prof.customers, "lo": top, "hi": new_top, "ordered": ordered},
                )
            if ordered:
                self.ordered_top = new_top
            else:
                self.pool_top = new_top
        return nxt

    def stamp_fanned_out(self) -> None:
        """Bookkeeping after a run that created requests (not measured): stamp them as
        fanned out, as the pool's are. Otherwise the next run that starts the worker (the
        relay mode's) spends it fanning out e-mails for tens of thousands of benchmark
        requests, in long transactions that also hold every event's delivery back."""
        self.sql(
            "UPDATE autodoctor.session_requests SET notification_sent_at = now()"
            " WHERE status = 'pending' AND notification_sent_at IS NULL"
        )

    def consumed(self, next_base: int) -> None:
        if next_base >= ORDERED_POOL_BASE:
            self.ordered_next = max(self.ordered_next, next_base)
        else:
            self.pool_next = max(self.pool_next, next_base)

    def estimate(self, key: str, seconds: float, clients: int) -> int:
        rate = self.rate.get(key, 9000.0 if clients > 1 else 2500.0)
        return int(rate * 1.5 * seconds) + 200 * clients + 1000

    def cleanup_sessions(self, since: Any) -> None:
        """Close the sessions a run created, so capacity never binds and every run sees
        the same load counters (bookkeeping between runs, not measured)."""
        with self.admin() as conn:
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute(
                    """
                    UPDATE autodoctor.sessions SET status = 'cancelled', cancel_reason = 'bench_cleanup',
                           updated_at = now(), ended_at = now()
                     WHERE status IN ('scheduled', 'waiting', 'live') AND created_at >= %s""",  # noqa: E501 (as pg_stat_statements shows it)
                    (since,),
                )
            conn.execute("""
                UPDATE autodoctor.mechanics m SET active_sessions = coalesce(l.n, 0)
                  FROM autodoctor.mechanics m2
                  LEFT JOIN (SELECT s.mechanic_id, count(*) AS n FROM autodoctor.sessions s
                              WHERE s.status IN ('scheduled', 'waiting', 'live')
                              GROUP BY s.mechanic_id) l ON l.mechanic_id = m2.user_id
                 WHERE m.user_id = m2.user_id
                   AND m.active_sessions IS DISTINCT FROM coalesce(l.n, 0)""")
            conn.execute("VACUUM autodoctor.mechanics")

    def now(self) -> Any:
        return self.sql("SELECT clock_timestamp()")[0][0]

    def checkpoint(self) -> None:
        self.sql("CHECKPOINT")

    # --- delivery modes ----------------------------------------------------------------

    def set_mode(self, name: str) -> None:
        if name == self.mode:
            return
        current = mode_by_name(self.mode)
        for stmt in current.teardown:
            self.sql(stmt)
        self.mode = DEFAULT_MODE
        target = mode_by_name(name)
        for stmt in target.setup:
            self.sql(stmt)
        self.mode = name

    @contextlib.contextmanager
    def relay(self, name: str) -> Iterator[None]:
        mode = mode_by_name(name)
        if mode.relay is None:
            yield
            return
        cmd = [
            part.format(python=self.py, dsn=self.dsn(), root=self.root, pgbin=self.pgbin)
            for part in mode.relay
        ]
        logf = self.out / f"relay-{name}.log"
        with logf.open("ab") as err:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
            )
        time.sleep(1.0)
        if proc.poll() is not None:
            raise RuntimeError(
                f"the {name} relay exited with {proc.returncode}:\n{logf.read_text()[-3000:]}"
            )
        crashed: int | None = None
        try:
            yield
        finally:
            crashed = proc.poll()  # it should still be running: the run needed it
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            # Whatever of its group outlived it (a crashed relay's pg_recvlogical).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        if crashed is not None:
            raise RuntimeError(
                f"the {name} relay exited with {crashed} during the run:\n"
                f"{logf.read_text()[-3000:]}"
            )

    # --- pgbench -------------------------------------------------------------------------

    def pgbench_cmd(
        self,
        tag: str,
        db: str,
        clients: int,
        seconds: float,
        *,
        builtin: str | None = None,
        script: str | None = None,
        user: str = "postgres",
        defines: dict[str, Any] | None = None,
        port: int | None = None,
        protocol: str = "prepared",
    ) -> list[str]:
        prefix = self.out / "pgbench" / tag
        for old in glob.glob(f"{prefix}.*"):
            os.unlink(old)
        cmd = [
            str(self.pgbin / "pgbench"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port or self.port),
            "-U",
            user,
            "-M",
            protocol,
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(round(seconds)),
            "-l",
            f"--log-prefix={prefix}",
        ]
        if builtin:
            cmd += ["-b", builtin]
        else:
            cmd += ["-n", "-f", str(BENCH / "pgbench" / str(script))]
        for key, value in (defines or {}).items():
            cmd += ["-D", f"{key}={value}"]
        cmd.append(db)
        return cmd

    def pgbench_result(
        self,
        tag: str,
        proc: subprocess.CompletedProcess[str] | Any,
        stdout: str,
        stderr: str,
        returncode: int,
    ) -> dict[str, Any]:
        prefix = self.out / "pgbench" / tag
        (self.out / "pgbench" / f"{tag}.out").write_text(stdout + "\n--- stderr ---\n" + stderr)
        res: dict[str, Any] = {"tag": tag, "rc": returncode}
        m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", stdout)
        res["tps"] = float(m.group(1)) if m else None
        m = re.search(r"number of transactions actually processed: (\d+)", stdout)
        res["transactions"] = int(m.group(1)) if m else None
        m = re.search(r"number of failed transactions: (\d+)", stdout)
        res["failed"] = int(m.group(1)) if m else 0
        lat: list[float] = []
        max_tx: dict[int, int] = {}
        logs = [p for p in glob.glob(f"{prefix}.*") if not p.endswith(".out")]
        for path in logs:
            with open(path) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) < 3:
                        continue
                    client, txno = int(parts[0]), int(parts[1])
                    max_tx[client] = max(max_tx.get(client, 0), txno)
                    if parts[2].isdigit():
                        lat.append(int(parts[2]) / 1000.0)
        lat.sort()
        res["p50_ms"] = workloads.percentile(lat, 50)
        res["p99_ms"] = workloads.percentile(lat, 99)
        res["mean_ms"] = statistics.fmean(lat) if lat else None
        res["max_k"] = max(max_tx.values()) if max_tx else 0
        if returncode != 0 or res["tps"] is None:
            res["error"] = (stderr or stdout)[-1500:]
        for path in logs:
            os.unlink(path)  # the percentiles are kept; the raw logs are large
        return res

    def wal_counters(self) -> tuple[int, int]:
        """(WAL fsyncs, commits) of the whole cluster so far: pg_stat_wal.wal_sync and the
        sum of pg_stat_database.xact_commit (a pgbench client's counts arrive when it
        exits, before pgbench returns)."""
        rows = self.sql(
            "SELECT (SELECT wal_sync FROM pg_stat_wal),"
            " (SELECT sum(xact_commit) FROM pg_stat_database)::bigint"
        )
        return int(rows[0][0]), int(rows[0][1])

    def pgbench(self, tag: str, db: str, clients: int, seconds: float, **kw: Any) -> dict[str, Any]:
        cmd = self.pgbench_cmd(tag, db, clients, seconds, **kw)
        syncs0, commits0 = self.wal_counters()
        cpu0, t0 = children_cpu_s(), time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300)
        cpu, wall = children_cpu_s() - cpu0, time.monotonic() - t0
        time.sleep(0.6)  # the WAL writer reports its syncs at most every 500 ms
        syncs1, commits1 = self.wal_counters()
        res = self.pgbench_result(tag, proc, proc.stdout, proc.stderr, proc.returncode)
        # WAL fsyncs per committed transaction over the run (the bench's own two counter
        # reads are two more commits: negligible beside thousands).
        res["wal_syncs"] = syncs1 - syncs0
        res["commits"] = commits1 - commits0
        res["fsyncs_per_commit"] = (
            (syncs1 - syncs0) / (commits1 - commits0) if commits1 > commits0 else None
        )
        # The CPU pgbench itself used (user + system), in cores over its run.
        res["wall_s"] = wall
        res["pgbench_cpu"] = cpu / wall if wall > 0 else None
        return res

    def accept_run(
        self,
        tag: str,
        clients: int,
        seconds: float,
        script: str = "accept.sql",
        user: str = "authenticator",
        key: str = "accept",
        during: contextlib.AbstractContextManager[Any] | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        """One pgbench run of accept (or its bare floor) on fresh pool requests. ``during`` is
        entered around the pgbench run alone (not the checkpoint before it or the clean-up
        after it); what it yields is returned as res["during"]."""
        base = self.ensure_pool(self.estimate(key, seconds, clients))
        since = self.now()
        self.checkpoint()
        with self.wait_sampler() as waits, during or contextlib.nullcontext() as extra:
            res = self.pgbench(
                tag,
                "bench",
                clients,
                seconds,
                script=script,
                user=user,
                defines={
                    "base": base,
                    "nc": clients,
                    "k": 0,
                    "nmech": self.prof.mechanics,
                    "ncust": self.prof.customers,
                },
                **kw,
            )
        res["waits"] = dict(waits)
        if during is not None:
            res["during"] = extra
        self.consumed(base + clients * (res["max_k"] + 1))
        if res.get("tps"):
            self.rate[key] = max(self.rate.get(key, 0.0), res["tps"])
        self.cleanup_sessions(since)
        return res

    @contextlib.contextmanager
    def wait_sampler(self, interval: float = 0.1) -> Iterator[dict[str, int]]:
        """Counts what the benchmark's active backends wait on, sampled every ``interval``
        seconds from pg_stat_activity (evidence for the report: e.g. the NOTIFY lock shows
        as ``Lock:object`` waits at commit)."""
        counts: dict[str, int] = {}
        stop = threading.Event()

        def sample() -> None:
            with contextlib.suppress(Exception), self.admin("postgres") as conn:
                while not stop.wait(interval):
                    for wtype, wevent, n in conn.execute("""
                            SELECT coalesce(wait_event_type, 'CPU'),
                                   coalesce(wait_event, 'running'),
                                   count(*)
                              FROM pg_stat_activity
                             WHERE datname = 'bench' AND state = 'active'
                               AND backend_type = 'client backend' AND application_name = 'pgbench'
                             GROUP BY 1, 2""").fetchall():
                        key = f"{wtype}:{wevent}"
                        counts[key] = counts.get(key, 0) + int(n)
                    counts["_samples"] = counts.get("_samples", 0) + 1

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield counts
        finally:
            stop.set()
            thread.join(timeout=5)

    # --- the Python load generator ----------------------------------------------------------

    def loadgen(
        self, spec: dict[str, Any], python: str | None = None, timeout: float = 600
    ) -> dict[str, Any]:
        spec = {
            "dsn": self.dsn(user="authenticator"),
            "admin_dsn": self.dsn(),
            "nmech": self.prof.mechanics,
            "ncust": self.prof.customers,
            **spec,
        }
        env = dict(os.environ)
        proc = subprocess.run(
            [python or self.py, str(BENCH / "loadgen.py"), json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"loadgen {spec['workload']} failed ({proc.returncode}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
            )
        res: dict[str, Any] = json.loads(lines[-1])
        if res.get("fatal"):
            raise RuntimeError(f"loadgen {spec['workload']}: {res['fatal'][-3000:]}")
        return res

    def py_accept_run(self, workload: str, clients: int, seconds: float) -> dict[str, Any]:
        base = self.ensure_pool(self.estimate("py_" + workload, seconds, clients))
        since = self.now()
        self.checkpoint()
        res = self.loadgen(
            {"workload": workload, "clients": clients, "seconds": seconds, "base": base}
        )
        self.consumed(res["next_base"])
        self.rate["py_" + workload] = max(
            self.rate.get("py_" + workload, 0.0), res["ops_per_s"] or 0
        )
        self.cleanup_sessions(since)
        return res

    # --- sections ----------------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        self.results["environment"] = dataset.environment(self)
        dataset.load(self)
        wanted = self.args.only.split(",") if self.args.only else list(sections.SECTIONS)
        for name, measure in sections.SECTIONS.items():
            if name not in wanted:
                continue
            log(f"section {name}")
            t0 = time.monotonic()
            try:
                self.results["sections"][name] = measure(self)
            except Exception:
                self.results["errors"][name] = traceback.format_exc()
                log(f"section {name} FAILED:\n{traceback.format_exc()}")
                with contextlib.suppress(Exception):
                    self.set_mode(DEFAULT_MODE)
            self.results.setdefault("section_seconds", {})[name] = time.monotonic() - t0
            self.save()
        self.results["total_seconds"] = time.monotonic() - started
        self.save()
        report.write_report(self.results, self.root / "BENCHMARKS.md")
        log(f"done in {self.results['total_seconds']:.0f} s; wrote {self.root / 'BENCHMARKS.md'}")
        return 1 if self.results["errors"] else 0

    def save(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1, default=str))


# --- the report ----------------------------------------------------------------------------

"""The benchmark cluster's pgbouncer and streaming standby, made, started and stopped by
scripts/cluster.sh: the same helper as scripts/db.sh (`make db-pooler`, `make db-replica`)
and bench/run (the cluster itself). Files go under the cluster's folder (``--base``):
pgbouncer/, standby/ and standby.log."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import Harness

SLOT = "bench_standby"


def script(h: Harness, command: str, *args: str | int) -> list[str]:
    """A scripts/cluster.sh command line for this run's cluster folder."""
    base = ["--dir", str(h.args.base)]
    return [str(h.root / "scripts" / "cluster.sh"), command, *base, *(str(a) for a in args)]


def free_port(start: int) -> int:
    """The first port from ``start`` that 127.0.0.1 can bind: nothing listens on it, and no
    connection uses it as its local end (an ephemeral port of some client)."""
    for port in range(start, start + 100):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + 99}")


@contextlib.contextmanager
def pgbouncer(h: Harness, pool_size: int) -> Iterator[int]:
    """pgbouncer in transaction pooling in front of the bench cluster, configured exactly
    as for `make db-pooler` (scripts/cluster.sh pooler-start); stopped afterwards."""
    if not shutil.which("pgbouncer"):
        raise RuntimeError("pgbouncer is not installed (make deps installs it)")
    port = free_port(h.port + 1000)
    start = script(h, "pooler-start", "--port", h.port, "--pooler-port", port,
                   "--pool-size", pool_size)  # fmt: skip
    try:
        h.run_cmd(start, timeout=60)
        yield port
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(script(h, "pooler-stop"), capture_output=True, timeout=30)


def pgbouncer_cpu_s(h: Harness) -> float:
    """CPU seconds (user + system) the running pgbouncer has used so far; 0 if unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((Path(h.args.base) / "pgbouncer" / "pgbouncer.pid").read_text().strip())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


@contextlib.contextmanager
def standby(h: Harness) -> Iterator[dict[str, Any]]:
    """A streaming hot standby of the bench cluster, made as `make db-replica` makes one
    (scripts/cluster.sh: pg_basebackup with a replication slot, hot_standby on); stopped
    and removed afterwards. Yields its port, the base backup's duration, and ``stop`` and
    ``start`` command lines (the section stops it and times its catch-up)."""
    port = free_port(h.port + 2000)
    logf = Path(h.args.base) / "standby.log"
    try:
        t0 = time.monotonic()
        h.run_cmd(script(h, "standby-create", "--port", h.port, "--standby-port", port,
                         "--slot", SLOT), timeout=1800)  # fmt: skip
        info: dict[str, Any] = {"port": port, "basebackup_s": time.monotonic() - t0}
        info["start"] = script(h, "standby-start", "--log", logf, "--timeout", 120)
        info["stop"] = script(h, "standby-stop", "--mode", "fast")
        h.run_cmd(info["start"], timeout=180)
        yield info
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(script(h, "standby-remove", "--port", h.port, "--slot", SLOT),
                           capture_output=True, timeout=120)  # fmt: skip


def restart(h: Harness) -> None:
    """Stop the bench cluster (fast) and start it again, for settings that need a restart."""
    h.run_cmd(script(h, "stop", "--mode", "fast"), timeout=120)
    h.run_cmd(script(h, "start", "--log", h.out / "postgresql.log", "--timeout", 120), timeout=180)


@contextlib.contextmanager
def logical_wal(h: Harness) -> Iterator[dict[str, Any]]:
    """The bench cluster restarted with wal_level = logical, and wal2json allowed as an
    output plugin where the server restricts output plugins to a list
    (``output_plugin_libraries``: the build measured in BENCHMARKS.md has it; a server
    without that setting needs nothing). Afterwards: logical slots a
    failure left are dropped (a server at wal_level replica refuses to start with one) and
    the settings reset, with a restart. Yields what was changed."""
    changed: dict[str, str] = {}
    try:
        changed["wal_level"] = "logical"
        h.sql("ALTER SYSTEM SET wal_level = logical")
        if h.sql("SELECT 1 FROM pg_settings WHERE name = 'output_plugin_libraries'"):
            (current,) = h.sql("SELECT current_setting('output_plugin_libraries')")[0]
            libs = [x.strip() for x in current.split(",") if x.strip()]
            if "wal2json" not in libs:
                libs.append("wal2json")
                changed["output_plugin_libraries"] = ", ".join(libs)
                # A list setting: the values unquoted (one quoted string is one element).
                h.sql(f"ALTER SYSTEM SET output_plugin_libraries = {', '.join(libs)}")
        restart(h)
        yield changed
    finally:
        # Each step on its own, so that one failing does not skip the restart.
        with contextlib.suppress(Exception):
            drop_logical_slots(h)
        for name in changed:
            with contextlib.suppress(Exception):
                h.sql(f"ALTER SYSTEM RESET {name}")
        restart(h)


def drop_logical_slots(h: Harness, timeout_s: float = 30.0) -> None:
    """Drop every logical replication slot, ending the sessions that still stream from one
    (a relay killed before its own cleanup leaves its pg_recvlogical running)."""
    deadline = time.monotonic() + timeout_s
    while True:
        h.sql(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
            " WHERE slot_type = 'logical' AND active_pid IS NOT NULL"
        )
        h.sql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_type = 'logical' AND NOT active"
        )
        if not h.sql("SELECT 1 FROM pg_replication_slots WHERE slot_type = 'logical'"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("logical replication slots are still in use")
        time.sleep(0.2)

"""scripts/cluster.sh, the one way the project starts a throwaway cluster (scripts/db.sh,
bench/run and the harness, the tests' PrivateCluster): a cluster in a temporary folder,
pgbouncer in transaction pooling in front of it, a streaming hot standby of it, then
everything stopped and removed. Each step is bounded (the helper's own timeouts, and
``timeout`` on every call); the whole test takes a few seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[3]
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))


def cluster(*args: str | int, timeout: float = 120) -> str:
    proc = subprocess.run(
        [str(CLUSTER_SH), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"cluster.sh {args}: {proc.stdout}{proc.stderr}"
    return proc.stdout.strip()


def connect(port: int, dbname: str = "postgres", **kw: object) -> psycopg.Connection[object]:
    return psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", dbname=dbname, autocommit=True,
        connect_timeout=10, **kw,
    )  # fmt: skip


@pytest.fixture
def base() -> Iterator[Path]:
    if not (PGBIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL server binaries in {PGBIN}")
    if os.getuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start a cluster")
    # Not pytest's tmp_path: as root, the postgres OS user must reach the folder.
    path = Path(tempfile.mkdtemp(prefix="autodoctor-cluster-"))
    try:
        yield path
    finally:
        subprocess.run(
            [str(CLUSTER_SH), "destroy", "--dir", str(path), "--mode", "immediate"],
            capture_output=True,
            timeout=120,
            check=False,
        )
        shutil.rmtree(path, ignore_errors=True)


def test_a_cluster_its_pooler_and_a_streaming_standby(base: Path) -> None:
    port = int(cluster("free-port", 45000))
    cluster("init", "--dir", base, "--port", port, "--conf", "max_connections = 30\nfsync = off")
    cluster("init", "--dir", base, "--port", port)  # idempotent: the cluster is kept
    cluster("start", "--dir", base)
    cluster("start", "--dir", base)  # idempotent
    cluster("status", "--dir", base)
    with connect(port) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN"
                " ('listen_addresses', 'unix_socket_directories', 'max_connections', 'fsync')"
            ).fetchall()
        )
        assert settings == {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "max_connections": "30",
            "fsync": "off",
        }
        conn.execute("CREATE TABLE probe (id int PRIMARY KEY)")

    # pgbouncer in transaction pooling, in front of every database of the cluster.
    pooler_port = int(cluster("free-port", port + 1))
    cluster("pooler-start", "--dir", base, "--port", port, "--pooler-port", pooler_port,
            "--pool-size", 2)  # fmt: skip
    ini = (base / "pgbouncer" / "pgbouncer.ini").read_text()
    assert "pool_mode = transaction" in ini
    assert f"* = host=127.0.0.1 port={port}" in ini
    with connect(pooler_port, prepare_threshold=None) as conn:
        assert conn.execute("SELECT current_setting('port')").fetchone() == (str(port),)
    cluster("pooler-stop", "--dir", base)
    assert not (base / "pgbouncer" / "pgbouncer.pid").exists()

    # A hot standby streaming through its replication slot; read-only.
    standby_port = int(cluster("free-port", pooler_port + 1))
    cluster("standby-start", "--dir", base, "--port", port, "--standby-port", standby_port,
            "--slot", "helper_test")  # fmt: skip
    with connect(port) as conn:
        conn.execute("INSERT INTO probe VALUES (1)")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT state, slot_name FROM pg_stat_replication"
                " JOIN pg_replication_slots ON active_pid = pid"
            ).fetchone()
            if row == ("streaming", "helper_test"):
                break
            time.sleep(0.1)
        assert row == ("streaming", "helper_test")
    with connect(standby_port) as stby:
        assert stby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        deadline = time.monotonic() + 30
        while stby.execute("SELECT count(*) FROM probe").fetchone() != (1,):
            assert time.monotonic() < deadline, "the standby did not replay the insert"
            time.sleep(0.05)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            stby.execute("INSERT INTO probe VALUES (2)")

    cluster("standby-stop", "--dir", base)
    cluster("standby-start", "--dir", base)  # restarts the standby it made, keeps the slot
    cluster("standby-remove", "--dir", base, "--port", port, "--slot", "helper_test")
    assert not (base / "standby").exists()
    with connect(port) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)

    cluster("stop", "--dir", base)
    proc = subprocess.run(
        [str(CLUSTER_SH), "status", "--dir", str(base)], capture_output=True, timeout=60
    )
    assert proc.returncode == 3
    cluster("destroy", "--dir", base)
    assert not base.exists()

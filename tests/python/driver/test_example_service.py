"""The example service (examples/fastapi_app) as its clients see it: a real uvicorn
process on a free loopback port, against this test's own database, spoken to with httpx.

- three mechanics accepting one request at once: exactly one 200, two 409s
  (request_not_pending); every contract error gets PostgREST's status and the
  {code, reason, message, hint} body; a malformed id or user id is a 400, never a 500;
- the database restarting under the pool (its connections terminated, as a restart looks
  to the pool; and a real restart of a private cluster): no 500, and once the server is
  back every request answers 200;
- GET /events (server-sent events) delivers the caller's events of a scripted scenario,
  and only theirs, exactly once and in order: across a reconnect with Last-Event-ID, and
  across the loss of the follower's connection.

Every wait is bounded in count and time; nothing asserts on a duration.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import autodoctor_db as ad
import psycopg
import pytest

pytest.importorskip("fastapi", reason="the example service needs fastapi (dev extra)")
pytest.importorskip("uvicorn", reason="the example service needs uvicorn (dev extra)")
pytest.importorskip("httpx", reason="the example service tests need httpx (dev extra)")

import httpx  # after the skips: without it the module is skipped, not broken

ROOT = Path(__file__).resolve().parents[3]
APP = ROOT / "examples" / "fastapi_app" / "app.py"

#: The application_name of the example's pool and follower connections (the driver's).
APP_CONNECTIONS = "autodoctor-db"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """``uvicorn examples.fastapi_app.app:app`` in a subprocess, DATABASE_URL=dsn."""

    def __init__(self, dsn: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.fastapi_app.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--timeout-graceful-shutdown",
                "5",
            ],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": dsn},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        for _ in range(300):  # up to ~30 s for the process to import and listen
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited at start:\n{self.output()}")
            try:
                self.client.get("/healthz")
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"the service did not start listening:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def unhandled(self) -> list[str]:
        """Lines of the server's log that show a 500 or an exception no handler mapped."""
        return [
            line
            for line in self.output().splitlines()
            if '" 500 ' in line or "Exception in ASGI application" in line
        ]

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def service(dsn: str, admin: psycopg.Connection[Any], tmp_path: Path) -> Iterator[Service]:
    """The example on this test's database, logged in as the README's NOINHERIT
    `authenticator` where the server has it (the throwaway cluster does), else as the
    test's own user."""
    login = dsn
    if admin.execute(
        "SELECT 1 FROM pg_roles WHERE rolname = 'authenticator' AND rolcanlogin"
    ).fetchone():
        parts = [p for p in dsn.split() if not p.startswith(("user=", "password="))]
        login = " ".join([*parts, "user=authenticator"])
    svc = Service(login, tmp_path / "service.log")
    try:
        yield svc
    finally:
        svc.stop()


def who(user: uuid.UUID | str) -> dict[str, str]:
    return {"X-User-Id": str(user)}


def terminate_app_connections(admin: psycopg.Connection[Any]) -> int:
    """Kill every connection the example holds to this database: a restart, as its pool
    (and its event follower) see it. Returns how many there were."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = %s"
        "   AND pid <> pg_backend_pid()",
        (APP_CONNECTIONS,),
    ).fetchall()
    return len(rows)


def load_example() -> ModuleType:
    """The example's module, imported in this process (no server: its pure functions)."""
    spec = importlib.util.spec_from_file_location("example_fastapi_app", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the race and the status table ----------------------------------------------------


def _accept(
    service: Service, mechanic: uuid.UUID, request_id: str, barrier: threading.Barrier
) -> httpx.Response:
    """POST accept on a connection of its own, once every racer is ready."""
    with httpx.Client(base_url=service.url, timeout=30) as client:
        client.get("/healthz")  # connected before the start
        barrier.wait(10)
        return client.post(f"/requests/{request_id}/accept", headers=who(mechanic))


def test_three_mechanics_racing_for_one_request_get_one_200_and_two_409s(
    service: Service,
    dsn: str,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer = make_user()
    mechanics = [make_mechanic(max_concurrent_sessions=100) for _ in range(3)]
    for _trial in range(5):
        created = service.client.post(
            "/requests", json={"session_type": "video", "notes": "race"}, headers=who(customer)
        )
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        for mechanic in mechanics:
            incoming = service.client.get("/incoming", headers=who(mechanic))
            assert incoming.status_code == 200, incoming.text
            assert request_id in [r["id"] for r in incoming.json()]

        barrier = threading.Barrier(len(mechanics))
        with ThreadPoolExecutor(len(mechanics)) as pool:
            responses = list(
                pool.map(lambda m, r=request_id, b=barrier: _accept(service, m, r, b), mechanics)
            )

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409, 409], [r.text for r in responses]
        (winner,) = [r.json() for r in responses if r.status_code == 200]
        assert winner["request_id"] == request_id and winner["mechanic_id"] is not None
        for loser in (r.json() for r in responses if r.status_code == 409):
            assert loser["code"] == "PT409" and loser["reason"] == "request_not_pending", loser
            assert loser["message"] and loser["hint"]
        with psycopg.connect(dsn) as conn:
            n = conn.execute(
                "SELECT count(*) FROM autodoctor.sessions WHERE request_id = %s", (request_id,)
            ).fetchone()
        assert n == (1,)
    assert service.unhandled() == []


def test_malformed_ids_and_user_ids_are_400_never_500(
    service: Service, make_user: Callable[..., uuid.UUID]
) -> None:
    user = make_user()
    good = str(uuid.uuid4())
    calls = [
        ("POST", "/requests/not-a-uuid/accept", who(user), None),
        ("POST", "/requests/42/cancel", who(user), None),
        ("POST", "/sessions/'; drop table x --/transition", who(user), {"to_status": "live"}),
        ("POST", f"/requests/{good}/accept", who("not-a-uuid"), None),
        ("POST", f"/requests/{good}/cancel", who("42"), None),
        ("POST", "/requests", who("0000"), {"session_type": "video"}),
        ("POST", f"/sessions/{good}/transition", who("x"), {"to_status": "live"}),
        ("GET", "/incoming", who("not-a-uuid"), None),
        ("GET", "/events", who("not-a-uuid"), None),
        ("GET", "/events", {**who(user), "Last-Event-ID": "yesterday"}, None),
    ]
    for method, path, headers, body in calls:
        r = service.client.request(method, path, headers=headers, json=body)
        assert r.status_code == 400, (method, path, headers, r.status_code, r.text)
        error = r.json()
        assert set(error) == {"code", "reason", "message", "hint"}, error
        assert error["code"].startswith("22"), error
    assert service.unhandled() == []


def test_each_contract_error_gets_postgrests_status_and_body(
    service: Service,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer, other = make_user(), make_user()
    mechanic = make_mechanic()
    c = service.client
    req = c.post("/requests", json={"session_type": "chat"}, headers=who(customer)).json()

    def error(r: httpx.Response, status: int, code: str, reason: str | None) -> None:
        assert r.status_code == status, r.text
        body = r.json()
        assert (body["code"], body["reason"]) == (code, reason), body
        assert body["message"], body

    error(c.get("/incoming"), 401, "42501", "not_authenticated")  # no caller at all
    error(
        c.post("/requests", json={"session_type": "chat"}, headers=who(uuid.uuid4())),
        401,
        "42501",
        "not_authenticated",  # a caller who is no user
    )
    error(
        c.post(f"/requests/{req['id']}/accept", headers=who(customer)),
        403,
        "42501",
        "not_mechanic",
    )
    error(
        c.post(f"/requests/{uuid.uuid4()}/accept", headers=who(mechanic)),
        404,
        "PT404",
        "request_not_found",
    )
    error(
        c.post(f"/requests/{req['id']}/cancel", headers=who(other)),
        404,
        "PT404",
        "request_not_found",  # another customer's request: as if it did not exist
    )
    error(
        c.post("/requests", json={"session_type": "chat", "plan_code": "gold"}, headers=who(other)),
        400,
        "22023",
        "unknown_plan",
    )
    error(
        c.post("/requests", json={"session_type": "phone"}, headers=who(other)),
        400,
        "22P02",  # PostgreSQL's own: not a session_type
        None,
    )
    error(c.post("/requests", json={}, headers=who(other)), 400, "22023", None)  # no body field
    error(c.get("/incoming?limit=0", headers=who(mechanic)), 400, "22023", None)
    session = c.post(f"/requests/{req['id']}/accept", headers=who(mechanic)).json()
    error(
        c.post(
            f"/sessions/{session['id']}/transition",
            json={"to_status": "completed"},
            headers=who(mechanic),
        ),
        409,
        "PT409",
        "invalid_transition",
    )
    error(
        c.post(
            f"/sessions/{session['id']}/transition",
            json={"to_status": "live"},
            headers=who(customer),
        ),
        403,
        "42501",
        "not_your_transition",
    )
    error(
        c.post(f"/requests/{req['id']}/cancel", headers=who(customer)),
        409,
        "PT409",
        "request_not_pending",  # accepted meanwhile
    )
    assert service.unhandled() == []


def test_the_status_table_covers_every_driver_error_class() -> None:
    """The mapping itself, class by class: 4xx for the contract, 503 for a database that
    is unreachable or read-only (retry), 500 for anything else."""
    example = load_example()
    e = ad.errors
    expected = {
        e.NotAuthenticated: 401,
        e.Forbidden: 403,
        e.NotMechanic: 403,
        e.NotQualified: 403,
        e.OutOfServiceArea: 403,
        e.NotFound: 404,
        e.Conflict: 409,
        e.RequestNotPending: 409,
        e.RequestExpired: 409,
        e.CapacityReached: 409,
        e.InvalidTransition: 409,
        e.TooManyRequests: 429,
        e.InvalidInput: 400,
        e.ResyncNeeded: 410,
        e.ReadOnly: 503,
        e.ConnectionFailed: 503,
        e.DatabaseError: 500,
    }
    for cls in vars(e).values():
        if isinstance(cls, type) and issubclass(cls, e.AutodoctorError):
            base = next((b for b in cls.__mro__ if b in expected), None)
            assert base is not None or cls is e.AutodoctorError, f"{cls} has no status"
            if base is not None:
                assert example.http_status(cls("x")) == expected[base], cls
    for sqlstate, status in [("42501", 403), ("PT404", 404), ("PT409", 409), ("22P02", 400)]:
        cls = e.error_class(sqlstate, None)
        assert example.http_status(cls("x", sqlstate=sqlstate)) == status, sqlstate
    lost = e.DatabaseError("gone", sqlstate="57P01")
    lost.__cause__ = psycopg.errors.AdminShutdown("terminating connection")
    assert example.http_status(lost) == 503
    response = example.error_response(lost)
    assert response.status_code == 503 and b"57P01" in response.body
    assert b"terminating" not in response.body  # a 5xx never shows the server's words


# --- the database restarting under the service -----------------------------------------


def _flow(service: Service, customer: uuid.UUID, mechanic: uuid.UUID) -> list[httpx.Response]:
    """A customer asks, a mechanic looks and accepts and starts: every endpoint, in turn."""
    c = service.client
    answers = [c.get("/healthz")]
    answers.append(c.post("/requests", json={"session_type": "chat"}, headers=who(customer)))
    if answers[-1].status_code != 201:
        return answers
    request_id = answers[-1].json()["id"]
    answers.append(c.get("/incoming", headers=who(mechanic)))
    answers.append(c.post(f"/requests/{request_id}/accept", headers=who(mechanic)))
    if answers[-1].status_code != 200:
        return answers
    session_id = answers[-1].json()["id"]
    for status in ("live", "completed"):
        answers.append(
            c.post(
                f"/sessions/{session_id}/transition",
                json={"to_status": status},
                headers=who(mechanic),
            )
        )
    return answers


def _concurrent_flows(
    service: Service, customer: uuid.UUID, mechanics: list[uuid.UUID]
) -> list[httpx.Response]:
    """Flows side by side, so that the pool holds several connections."""
    with ThreadPoolExecutor(len(mechanics)) as pool:
        runs = list(pool.map(lambda m: _flow(service, customer, m), mechanics))
    return [r for run in runs for r in run]


def _statuses(responses: list[httpx.Response]) -> list[tuple[str, int]]:
    return [(f"{r.request.method} {r.request.url.path}", r.status_code) for r in responses]


def test_a_database_restart_as_the_pool_sees_it_gives_no_500_and_then_200s(
    service: Service,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer = make_user()
    mechanics = [make_mechanic(max_concurrent_sessions=100) for _ in range(4)]
    before = _concurrent_flows(service, customer, mechanics)
    assert all(r.status_code < 300 for r in before), _statuses(before)

    assert terminate_app_connections(admin) >= 1

    after = [r for _ in range(3) for r in _flow(service, customer, mechanics[0])]
    after += _concurrent_flows(service, customer, mechanics)
    assert all(r.status_code != 500 for r in after), _statuses(after)
    assert service.unhandled() == []
    # Every request after the restart is served: the pool checks a connection before
    # handing it out, so none gets one the server has closed.
    assert all(r.status_code < 300 for r in after), _statuses(after)


# --- server-sent events ----------------------------------------------------------------


class EventStream:
    """GET /events as one user, read frame by frame (bounded: a stream that only sends
    keep-alives for a minute fails the test instead of hanging it)."""

    def __init__(self, service: Service, user: uuid.UUID, last_event_id: str | None) -> None:
        headers = who(user)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self._client = httpx.Client(base_url=service.url, timeout=30)
        self._cm = self._client.stream("GET", "/events", headers=headers)
        self.response = self._cm.__enter__()
        assert self.response.status_code == 200, self.response.read()
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self._lines = self.response.iter_lines()

    def next_frame(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        idle = 0
        for line in self._lines:
            if line == "":
                if "data" in fields:
                    return fields
                fields = {}
                continue
            if line.startswith(":"):
                idle += 1
                assert idle <= 4, "only keep-alives for a minute: the stream stalled"
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    def take(self, n: int) -> list[dict[str, Any]]:
        import json

        frames = [self.next_frame() for _ in range(n)]
        assert all("event" not in f for f in frames), frames  # no error event
        events = [json.loads(f["data"]) for f in frames]
        for frame, event in zip(frames, events, strict=True):
            assert frame["id"] == event["cursor"], (frame, event)
        return events

    def close(self) -> None:
        self._cm.__exit__(None, None, None)
        self._client.close()


def _visible_to(db: ad.Database, user: uuid.UUID) -> list[ad.Event]:
    """Every event the user may read, in the follower's order (writing transaction, id)."""
    with db.as_user(user) as u:
        events = u.events_after(0, limit=10_000)
    return sorted(events, key=lambda e: (e.txid or 0, e.id))


def test_events_stream_delivers_the_callers_events_exactly_once_in_order(
    service: Service,
    dsn: str,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer, stranger = make_user(), make_user()
    mechanic = make_mechanic(max_concurrent_sessions=10)
    c = service.client
    # The scenario's own connections, named apart from the service's (killed below).
    scenario = ad.connect(dsn, application_name="scenario", max_size=2)
    received: list[dict[str, Any]] = []
    try:
        # 1. Subscribe from the start, then: a request, a stranger's, both accepted, live.
        stream = EventStream(service, customer, None)
        req = c.post("/requests", json={"session_type": "video"}, headers=who(customer)).json()
        theirs = c.post("/requests", json={"session_type": "chat"}, headers=who(stranger)).json()
        session = c.post(f"/requests/{req['id']}/accept", headers=who(mechanic)).json()
        c.post(f"/requests/{theirs['id']}/accept", headers=who(mechanic))
        assert session["status"] == "waiting"
        moved = c.post(
            f"/sessions/{session['id']}/transition",
            json={"to_status": "live"},
            headers=who(mechanic),
        )
        assert moved.status_code == 200, moved.text
        expected = _visible_to(scenario, customer)
        assert len(expected) >= 3
        received += stream.take(len(expected))
        stream.close()

        # 2. While nobody listens: another request, cancelled.
        second = c.post("/requests", json={"session_type": "chat"}, headers=who(customer)).json()
        c.post(f"/requests/{second['id']}/cancel", headers=who(customer))

        # 3. Reconnect from the last id received: exactly what was missed.
        stream = EventStream(service, customer, received[-1]["cursor"])
        backlog = len(_visible_to(scenario, customer)) - len(received)
        assert backlog >= 2
        received += stream.take(backlog)

        # 4. The follower's connection is killed under the open stream (the pool's too);
        # the scenario goes on through its own connection, and the stream catches up.
        assert terminate_app_connections(admin) >= 1
        with scenario.as_user(mechanic) as m:
            m.transition_session(session["id"], "completed")
        with scenario.as_user(customer) as u:
            last = u.create_session_request("diagnostic", "free", notes="sentinel")
        expected = _visible_to(scenario, customer)
        received += stream.take(len(expected) - len(received))
        stream.close()
    finally:
        scenario.close()

    assert [e["id"] for e in received] == [e.id for e in expected]
    assert len({e["id"] for e in received}) == len(received)  # exactly once
    assert received[-1]["request_id"] == str(last.id)  # nothing after the last one
    assert all(e["request_id"] != theirs["id"] for e in received)  # only the caller's
    assert [e["event"] for e in received][:2] == ["new_request", "request_accepted"]
    assert service.unhandled() == []


def _listeners(admin: psycopg.Connection[Any]) -> int:
    """The service's follower connections to this database (they LISTEN)."""
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = %s AND query LIKE %s",
        (APP_CONNECTIONS, "%event_watermark%"),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_events_stream_resumes_after_a_cursor_it_sent(
    service: Service,
    admin: psycopg.Connection[Any],
    make_user: Callable[..., uuid.UUID],
) -> None:
    """Reconnecting with the last id replays nothing already received, even after a
    reconnect that received nothing new; the first id replays the rest. A client that
    goes away takes its follower's database connection with it."""
    customer = make_user()
    c = service.client
    for n in range(3):
        created = c.post(
            "/requests", json={"session_type": "chat", "notes": str(n)}, headers=who(customer)
        )
        assert created.status_code == 201
    stream = EventStream(service, customer, None)
    first_three = stream.take(3)
    stream.close()
    stream = EventStream(service, customer, first_three[0]["cursor"])
    assert [e["id"] for e in stream.take(2)] == [e["id"] for e in first_three[1:]]
    stream.close()
    stream = EventStream(service, customer, first_three[-1]["cursor"])
    c.post("/requests", json={"session_type": "chat", "notes": "4"}, headers=who(customer))
    (fourth,) = stream.take(1)
    assert _listeners(admin) == 1  # this stream's follower
    stream.close()
    assert fourth["event"] == "new_request" and fourth["id"] not in {e["id"] for e in first_three}
    for _ in range(100):  # up to ~10 s for the server to see the disconnects
        if _listeners(admin) == 0:
            break
        time.sleep(0.1)
    assert _listeners(admin) == 0


def test_a_real_restart_of_the_database_server_gives_no_500_and_then_200s(
    tmp_path: Path,
) -> None:
    """Bonus: a private cluster stopped and started under the running service. While it is
    down the service answers 503 (retry), never 500; once it is back, 200s; and an
    /events stream open all along delivers every event exactly once."""
    from operations.test_migrations import PrivateCluster, _as_owner, must, sqitch

    cluster = PrivateCluster()
    try:
        dbname = cluster.create_db()
        must(sqitch("deploy", cluster.target(dbname), "--verify"))
        dsn = f"host=127.0.0.1 port={cluster.port} user=postgres dbname={dbname}"
        scenario = ad.connect(dsn, application_name="scenario", max_size=2)
        with psycopg.connect(dsn, autocommit=True) as conn:
            ids = conn.execute(
                "INSERT INTO auth.users (email) VALUES ('c@example.test'), ('m@example.test')"
                " RETURNING id"
            ).fetchall()
        customer, mechanic = (uuid.UUID(str(r[0])) for r in ids)
        with scenario.as_service() as svc:
            svc.register_mechanic(mechanic, max_concurrent_sessions=100)
        service = Service(dsn, tmp_path / "service.log")
        stream: EventStream | None = None
        try:
            before = _flow(service, customer, mechanic)
            assert all(r.status_code < 300 for r in before), _statuses(before)
            stream = EventStream(service, customer, None)
            received = stream.take(len(_visible_to(scenario, customer)))

            subprocess.run(
                _as_owner([*cluster.pg_ctl, "-m", "fast", "stop"]), check=True, capture_output=True
            )
            with ThreadPoolExecutor(2) as pool:  # each waits for the pool's timeout
                down = list(
                    pool.map(
                        lambda path: service.client.get(path, headers=who(mechanic)),
                        ["/healthz", "/incoming"],
                    )
                )
            assert [r.status_code for r in down] == [503, 503], _statuses(down)
            assert down[1].json()["message"] == "database unavailable"
            subprocess.run(_as_owner([*cluster.pg_ctl, "start"]), check=True, capture_output=True)

            for _ in range(12):  # the pool reconnects (with its back-off): up to ~2 min
                if service.client.get("/healthz").status_code == 200:
                    break
            after = [r for _ in range(3) for r in _flow(service, customer, mechanic)]
            assert all(r.status_code != 500 for r in after), _statuses(after)
            assert all(r.status_code < 300 for r in after), _statuses(after)

            expected = _visible_to(scenario, customer)
            received += stream.take(len(expected) - len(received))
            assert [e["id"] for e in received] == [e.id for e in expected]
            assert service.unhandled() == []
        finally:
            if stream is not None:
                stream.close()
            service.stop()
            scenario.close()
    finally:
        cluster.stop()

"""Concurrency and faults, with real connections and many trials each.

Races (each TRIALS times, the racers released together by a barrier): accept vs accept,
accept vs cancel, accept vs expire, claim vs auto-assign, two run_maintenance at once.
Every trial checks that exactly one side won, that the loser got the contract's answer,
and that the rows agree with the outcome (check_invariants empty).

Faults: a backend terminated (pg_terminate_backend) in the middle of accept, after it
has written the accepted request and the new session but before it commits; a backend
killed at a random instant; a statement_timeout firing at the same point. None may leave
a partial state. And a mixed load of every operation on shared rows, which must never
deadlock (40P01) nor fail a serialization check (40001): the driver does not retry, so
neither may happen.

The figures (trials per race, outcomes) are printed in the closing summary.
"""

from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from support import act_as, call_function, invariants, new_user, report

TRIALS = 200

#: Invariant violations the mixed load may still produce because of a bug pinned by an
#: xfail test at the end of this file (a customer's cancel racing a conversion). Empty this
#: set when it is fixed.
KNOWN_INVARIANT_BUGS: frozenset[str] = frozenset()

FIGURES: dict[str, Counter[str]] = {}


@dataclass(frozen=True)
class Outcome:
    """What one call gave: its rows, or its SQLSTATE and reason."""

    ok: bool
    rows: list[tuple[Any, ...]]
    sqlstate: str | None = None
    reason: str | None = None

    def __str__(self) -> str:
        return "ok" if self.ok else f"{self.sqlstate}:{self.reason}"


def attempt(
    conn: psycopg.Connection[Any], role: str, sub: object | None, fn: str, args: dict[str, Any]
) -> Outcome:
    """One call as one caller, in its own transaction on ``conn``."""
    try:
        with conn.transaction():
            act_as(conn, role, sub)
            rows = call_function(conn, fn, args)
        return Outcome(True, rows)
    except psycopg.Error as exc:
        return Outcome(False, [], exc.sqlstate, exc.diag.message_detail)


def race(*jobs: Callable[[], Outcome]) -> list[Outcome]:
    """Run the jobs in threads released together; their outcomes, in order."""
    barrier = threading.Barrier(len(jobs))
    results: list[Outcome | None] = [None] * len(jobs)

    def run(i: int, job: Callable[[], Outcome]) -> None:
        barrier.wait(10)
        results[i] = job()

    threads = [threading.Thread(target=run, args=(i, j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in results), "a racer did not finish"
    return [r for r in results if r is not None]


def tally(name: str, key: str) -> None:
    FIGURES.setdefault(name, Counter())[key] += 1


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name, counts in FIGURES.items():
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        if name == "mixed load":
            report(request, f"faults: {name}: {detail}")
        else:
            report(request, f"faults: {name}: {sum(counts.values())} trials ({detail})")


@dataclass
class Stage:
    """The users and connections a test plays with."""

    dsn: str
    admin: psycopg.Connection[Any]
    conns: list[psycopg.Connection[Any]]

    def service(self, fn: str, **args: Any) -> list[tuple[Any, ...]]:
        with self.conns[0].transaction():
            act_as(self.conns[0], "service_role")
            return call_function(self.conns[0], fn, args)

    def user(self, who: uuid.UUID, fn: str, **args: Any) -> list[tuple[Any, ...]]:
        with self.conns[0].transaction():
            act_as(self.conns[0], "authenticated", who)
            return call_function(self.conns[0], fn, args)

    def mechanic(
        self,
        *,
        online: bool = False,
        expertise: str = "{chat,video,diagnostic}",
        capacity: int = 100,
    ) -> uuid.UUID:
        uid = new_user(self.admin, "Mechanic")
        self.service(
            "register_mechanic",
            user_id=str(uid),
            expertise=expertise,
            max_concurrent_sessions=capacity,
        )
        if online:
            self.user(uid, "set_mechanic_availability", online=True)
        return uid

    def requests(self, customer: uuid.UUID, n: int, session_type: str = "chat") -> list[uuid.UUID]:
        """n pending requests of one customer, created in one transaction (the per-customer
        cap on pending requests is lifted for it: trials race on many of them)."""
        self.admin.execute(
            "UPDATE autodoctor.settings SET max_pending_requests = 1000"
            " WHERE max_pending_requests < 1000"
        )
        with self.conns[0].transaction():
            act_as(self.conns[0], "authenticated", customer)
            return [
                uuid.UUID(
                    str(
                        self.conns[0]
                        .execute(
                            "SELECT id FROM autodoctor.create_session_request(%s, 'free')",
                            (session_type,),
                        )
                        .fetchone()[0]
                    )
                )  # type: ignore[index]
                for _ in range(n)
            ]

    def one(self, query: str, *params: Any) -> Any:
        row = self.admin.execute(query, params).fetchone()
        return None if row is None else row[0] if len(row) == 1 else tuple(row)

    def assert_healthy(self, *, orphans_allowed: bool = False, known_bugs: bool = False) -> None:
        bad = [
            v
            for v in invariants(self.admin)
            if not (orphans_allowed and v[0] == "orphan_without_pending_request")
            and not (known_bugs and v[0] in KNOWN_INVARIANT_BUGS)
        ]
        assert not bad, bad


@pytest.fixture
def stage(dsn: str, admin: psycopg.Connection[Any]) -> Iterator[Stage]:
    conns = [psycopg.connect(dsn) for _ in range(4)]
    try:
        yield Stage(dsn, admin, conns)
    finally:
        for c in conns:
            c.close()


# --- races -------------------------------------------------------------------------------


def test_accept_vs_accept_exactly_one_wins_every_time(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    mechanics = [stage.mechanic() for _ in range(4)]
    requests = stage.requests(customer, TRIALS)
    a, b = stage.conns[1], stage.conns[2]
    for i, req in enumerate(requests):
        m1, m2 = mechanics[i % 4], mechanics[(i + 1) % 4]
        r1, r2 = race(
            functools.partial(
                attempt, a, "authenticated", m1, "accept_session_request", {"request_id": req}
            ),
            functools.partial(
                attempt, b, "authenticated", m2, "accept_session_request", {"request_id": req}
            ),
        )
        assert r1.ok != r2.ok, (r1, r2)
        winner, loser = (m1, r2) if r1.ok else (m2, r1)
        assert (loser.sqlstate, loser.reason) == ("PT409", "request_not_pending"), loser
        tally("accept vs accept", "first racer won" if r1.ok else "second racer won")
        assert stage.one(
            "SELECT r.status::text, r.mechanic_id, s.mechanic_id, (SELECT count(*) FROM"
            " autodoctor.sessions x WHERE x.request_id = r.id) FROM autodoctor.session_requests r"
            " JOIN autodoctor.sessions s ON s.request_id = r.id WHERE r.id = %s",
            req,
        ) == ("accepted", winner, winner, 1)
    stage.assert_healthy()


def test_accept_vs_cancel_exactly_one_wins_every_time(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    mechanics = [stage.mechanic() for _ in range(3)]
    requests = stage.requests(customer, TRIALS)
    a, b = stage.conns[1], stage.conns[2]
    for i, req in enumerate(requests):
        mech = mechanics[i % 3]
        acc, can = race(
            functools.partial(
                attempt, a, "authenticated", mech, "accept_session_request", {"request_id": req}
            ),
            functools.partial(
                attempt, b, "authenticated", customer, "cancel_session_request", {"request_id": req}
            ),
        )
        assert acc.ok != can.ok, (acc, can)
        loser = can if acc.ok else acc
        assert (loser.sqlstate, loser.reason) == ("PT409", "request_not_pending"), loser
        tally("accept vs cancel", "accept won" if acc.ok else "cancel won")
        status, sessions = stage.one(
            "SELECT status::text, (SELECT count(*) FROM autodoctor.sessions s WHERE"
            " s.request_id = r.id)"
            " FROM autodoctor.session_requests r WHERE r.id = %s",
            req,
        )
        assert (status, sessions) == (("accepted", 1) if acc.ok else ("cancelled", 0))
    stage.assert_healthy()


def test_accept_vs_expire_never_both(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    mechanics = [stage.mechanic() for _ in range(3)]
    requests = stage.requests(customer, TRIALS)
    a, b = stage.conns[1], stage.conns[2]
    for i, req in enumerate(requests):
        mech = mechanics[i % 3]
        # The request expires within a few milliseconds of the race: either side may win.
        stage.admin.execute(
            "UPDATE autodoctor.session_requests SET expires_at = clock_timestamp()"
            " + make_interval(secs => %s) WHERE id = %s",
            (random.uniform(-0.001, 0.008), req),
        )
        acc, exp = race(
            functools.partial(
                attempt, a, "authenticated", mech, "accept_session_request", {"request_id": req}
            ),
            functools.partial(attempt, b, "service_role", None, "expire_stale_requests", {}),
        )
        assert exp.ok, exp
        status = stage.one(
            "SELECT status::text FROM autodoctor.session_requests WHERE id = %s", req
        )
        if acc.ok:
            assert status == "accepted"
            tally("accept vs expire", "accept won")
        else:
            assert (acc.sqlstate, acc.reason) == ("PT409", "request_expired"), acc
            # Expired by this run, or past its expiry and left for the next one.
            assert status in ("expired", "pending")
            tally(
                "accept vs expire",
                "expiry won" if status == "expired" else "accept refused a stale request",
            )
        stage.service("expire_stale_requests")
        assert stage.one(
            "SELECT (status::text = 'accepted') = EXISTS (SELECT 1 FROM autodoctor.sessions s"
            " WHERE s.request_id = r.id) FROM autodoctor.session_requests r WHERE r.id = %s",
            req,
        )
    stage.assert_healthy()


def test_claim_vs_auto_assign_assigns_each_orphan_once(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    claimers = [stage.mechanic() for _ in range(3)]  # offline: auto-assign never picks them
    pool = {stage.mechanic(online=True) for _ in range(3)}
    a, b = stage.conns[1], stage.conns[2]
    for i in range(TRIALS):
        status = "live" if i % 4 == 3 else "pending"
        orphan = stage.one(
            "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status, created_at)"
            " VALUES (%s, 'free', 'chat', %s, now() - interval '1 hour') RETURNING id",
            customer,
            status,
        )
        converted = i % 2 == 0
        if converted:
            assert stage.service("convert_orphaned_sessions") == [(1,)]
        claimer = claimers[i % 3]
        claim, auto = race(
            functools.partial(
                attempt,
                a,
                "authenticated",
                claimer,
                "claim_orphaned_session",
                {"session_id": orphan},
            ),
            functools.partial(
                attempt,
                b,
                "service_role",
                None,
                "auto_assign_orphaned_sessions",
                {"batch_size": 10},
            ),
        )
        assert auto.ok, auto
        assigned = auto.rows[0][0]
        assert claim.ok != (assigned == 1), (claim, auto)
        if not claim.ok:
            assert (claim.sqlstate, claim.reason) == ("PT409", "session_not_claimable"), claim
        mechanic, new_status, events = stage.one(
            "SELECT mechanic_id, status::text, (SELECT count(*) FROM autodoctor.session_events e"
            " WHERE e.session_id = s.id AND e.event = 'session_assigned') FROM"
            " autodoctor.sessions s"
            " WHERE id = %s",
            orphan,
        )
        assert mechanic == claimer if claim.ok else mechanic in pool
        assert new_status == ("live" if status == "live" else "waiting")
        assert events == 1
        if converted:
            assert stage.one(
                "SELECT status::text, mechanic_id FROM autodoctor.session_requests WHERE"
                " session_id = %s",
                orphan,
            ) == ("accepted", mechanic)
        tally(
            "claim vs auto-assign",
            ("claim won" if claim.ok else "auto-assign won")
            + (" (converted orphan)" if converted else ""),
        )
    stage.assert_healthy()


def _seed_dispatch_trial(stage: Stage, customer: uuid.UUID) -> list[uuid.UUID]:
    """Capacity 10 for 16 orphans: two located mechanics in Paris (capacity 3, 10 km) and
    two without a location (capacity 2); 8 located orphans in Paris, 8 without a location,
    one in four live, the 5 oldest converted (a pending request points at each)."""
    for latitude, longitude in ((48.8566, 2.3522), (48.8600, 2.3400)):
        uid = new_user(stage.admin, "Mechanic")
        stage.service(
            "register_mechanic",
            user_id=str(uid),
            expertise="{chat}",
            latitude=latitude,
            longitude=longitude,
            service_radius_km=10,
            max_concurrent_sessions=3,
        )
        stage.user(uid, "set_mechanic_availability", online=True)
    for _ in range(2):
        stage.mechanic(online=True, expertise="{chat}", capacity=2)
    orphans = []
    for i in range(16):
        intake = None
        if i % 2 == 0:
            intake = stage.one(
                "INSERT INTO autodoctor.intakes (customer_id, vehicle_make, vehicle_model,"
                " vehicle_year, concern, location) VALUES (%s, 'Ford', 'Focus', 2012, 'noise',"
                " extensions.st_makepoint(%s, 48.85)::extensions.geography) RETURNING id",
                customer,
                2.30 + i / 100,
            )
        orphans.append(
            stage.one(
                "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status,"
                " intake_id, created_at) VALUES (%s, 'free', 'chat', %s, %s,"
                " now() - interval '1 hour' - %s * interval '1 minute') RETURNING id",
                customer,
                "live" if i % 4 == 3 else "pending",
                intake,
                16 - i,
            )
        )
        if i == 4:
            assert stage.service("convert_orphaned_sessions") == [(5,)]
    return orphans


def test_two_auto_assign_runs_at_once_never_double_assign_nor_exceed_capacity(
    stage: Stage,
) -> None:
    """Two set-based runs racing for the same orphans and the same mechanics: no error, no
    deadlock, no session assigned twice, no mechanic over capacity, the returned counts add
    up; every orphan a run skipped is still a valid orphan, and a later run assigns it while
    capacity lasts."""
    customer = new_user(stage.admin, "Customer")
    a, b = stage.conns[1], stage.conns[2]
    for _ in range(TRIALS // 4):
        orphans = _seed_dispatch_trial(stage, customer)
        first, second = race(
            functools.partial(
                attempt, a, "service_role", None, "auto_assign_orphaned_sessions", {"batch_size": 8}
            ),
            functools.partial(
                attempt,
                b,
                "service_role",
                None,
                "auto_assign_orphaned_sessions",
                {"batch_size": 16},
            ),
        )
        assert first.ok and second.ok, (first, second)
        raced = first.rows[0][0] + second.rows[0][0]
        tally("two auto-assign runs at once", f"assigned {raced} of 10 places")
        assigned = stage.one(
            "SELECT count(*) FROM autodoctor.sessions"
            " WHERE id = ANY(%s) AND mechanic_id IS NOT NULL",
            orphans,
        )
        assert assigned == raced
        stage.assert_healthy(orphans_allowed=True)
        assert stage.service("auto_assign_orphaned_sessions", batch_size=100)[0][0] == 10 - raced
        assert stage.one(
            "SELECT count(*) FILTER (WHERE s.mechanic_id IS NOT NULL),"
            " count(*) FILTER (WHERE s.mechanic_id IS NULL AND s.status IN ('pending', 'live')),"
            " (SELECT count(*) FROM autodoctor.session_events e WHERE e.session_id = ANY(%s)"
            "   AND e.event = 'session_assigned'),"
            " (SELECT count(*) FROM autodoctor.mechanics m"
            "   WHERE m.active_sessions > m.max_concurrent_sessions)"
            " FROM autodoctor.sessions s WHERE s.id = ANY(%s)",
            orphans,
            orphans,
        ) == (10, 6, 10, 0)
        stage.assert_healthy(orphans_allowed=True)
        # the 6 left over are cancelled, so that the next trial starts from none
        stage.service("cancel_orphaned_sessions", older_than="0 seconds")


def test_two_run_maintenance_at_once_share_the_work_without_error(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    for _ in range(2):
        stage.mechanic(online=True, expertise="{chat}", capacity=100)
    a, b = stage.conns[1], stage.conns[2]
    for _ in range(TRIALS):
        stale = stage.requests(customer, 1)[0]
        stage.admin.execute(
            "UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 minute'"
            " WHERE id = %s",
            (stale,),
        )
        seeded = {}
        for label, session_type, age in (
            ("old_converted", "video", "2 days"),
            ("old", "chat", "2 days"),
            ("young", "chat", "1 hour"),
            ("young_unassignable", "diagnostic", "1 hour"),
        ):
            seeded[label] = stage.one(
                "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status, created_at)"
                " VALUES (%s, 'free', %s, 'pending', now() - %s::interval) RETURNING id",
                customer,
                session_type,
                age,
            )
            if label == "old_converted":
                assert stage.service("convert_orphaned_sessions") == [(1,)]
        m1, m2 = race(
            functools.partial(attempt, a, "service_role", None, "run_maintenance", {}),
            functools.partial(attempt, b, "service_role", None, "run_maintenance", {}),
        )
        assert m1.ok and m2.ok, (m1, m2)
        r1, r2 = m1.rows[0][0], m2.rows[0][0]
        assert r1["expired_requests"] + r2["expired_requests"] == 1, (r1, r2)
        assert r1["cancelled_orphans"] + r2["cancelled_orphans"] == 2, (r1, r2)
        assert (
            r1["auto_assigned"]
            + r2["auto_assigned"]
            + r1["converted_orphans"]
            + r2["converted_orphans"]
        ) >= 2, (r1, r2)
        states = dict(
            stage.admin.execute(
                "SELECT s.id, s.status::text || coalesce('+' || (SELECT r.status::text FROM"
                " autodoctor.session_requests r WHERE r.session_id = s.id ORDER BY"
                " r.created_at DESC"
                " LIMIT 1), '') FROM autodoctor.sessions s WHERE s.id = ANY(%s)",
                (list(seeded.values()),),
            ).fetchall()
        )
        assert states[seeded["old"]] == "cancelled"
        assert states[seeded["old_converted"]] == "cancelled+cancelled"
        assert states[seeded["young"]] in ("waiting", "waiting+accepted", "pending+pending")
        assert states[seeded["young_unassignable"]] == "pending+pending"
        tally(
            "two run_maintenance at once",
            "both did work"
            if all(
                sum(
                    v
                    for k, v in r.items()
                    if k
                    in (
                        "expired_requests",
                        "cancelled_orphans",
                        "auto_assigned",
                        "converted_orphans",
                    )
                )
                > 0
                for r in (r1, r2)
            )
            else "one did all the work",
        )
        # Nothing is left for a third run, and the data is healthy.
        stage.assert_healthy()
        # The unassignable orphan's request would wait for a diagnostic mechanic: close it
        # so the next trial starts from the same state.
        stage.user(
            customer,
            "cancel_session_request",
            request_id=stage.one(
                "SELECT id FROM autodoctor.session_requests WHERE session_id = %s AND status ="
                " 'pending'",
                seeded["young_unassignable"],
            ),
        )
        if states[seeded["young"]] == "pending+pending":
            stage.user(
                customer,
                "cancel_session_request",
                request_id=stage.one(
                    "SELECT id FROM autodoctor.session_requests WHERE session_id = %s AND"
                    " status = 'pending'",
                    seeded["young"],
                ),
            )
    stage.assert_healthy()


# --- faults ------------------------------------------------------------------------------


def _backend_pid(conn: psycopg.Connection[Any]) -> int:
    return int(conn.info.backend_pid)


def _wait_until_blocked_after_writing(admin: psycopg.Connection[Any], pid: int) -> None:
    """Until backend ``pid`` waits on a lock while holding the row locks of its writes to
    session_requests and sessions (its accept has written both and waits in the load
    trigger for the mechanic's row)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT a.wait_event_type = 'Lock',"
            "       EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted"
            "                AND l.relation = 'autodoctor.sessions'::regclass AND l.mode ="
            " 'RowExclusiveLock'),"
            "       EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted"
            "                AND l.relation = 'autodoctor.session_requests'::regclass"
            "                AND l.mode = 'RowExclusiveLock')"
            "  FROM pg_stat_activity a WHERE a.pid = %s",
            (pid,),
        ).fetchone()
        if row is not None and all(row):
            return
        time.sleep(0.001)
    raise AssertionError(f"backend {pid} never blocked in accept after its writes")


def _assert_untouched(stage: Stage, req: uuid.UUID, mechanic: uuid.UUID, load: int) -> None:
    assert stage.one(
        "SELECT r.status::text, r.mechanic_id, r.session_id,"
        " (SELECT count(*) FROM autodoctor.sessions s WHERE s.request_id = r.id),"
        " (SELECT count(*) FROM autodoctor.session_events e WHERE e.request_id = r.id),"
        " (SELECT m.active_sessions FROM autodoctor.mechanics m WHERE m.user_id = %s)"
        " FROM autodoctor.session_requests r WHERE r.id = %s",
        mechanic,
        req,
    ) == ("pending", None, None, 0, 1, load)


def test_backend_terminated_in_the_middle_of_accept_leaves_no_partial_state(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    mechanic = stage.mechanic(capacity=100)
    requests = stage.requests(customer, TRIALS)
    blocker = stage.conns[1]
    for req in requests:
        load = stage.one(
            "SELECT active_sessions FROM autodoctor.mechanics WHERE user_id = %s", mechanic
        )
        victim = psycopg.connect(stage.dsn)
        outcome: list[BaseException | Outcome] = []
        try:
            with blocker.transaction():
                blocker.execute(
                    "SELECT 1 FROM autodoctor.mechanics WHERE user_id = %s FOR UPDATE", (mechanic,)
                )

                def accept(
                    conn: psycopg.Connection[Any] = victim,
                    r: uuid.UUID = req,
                    outcome: list[BaseException | Outcome] = outcome,
                ) -> None:
                    try:
                        outcome.append(
                            attempt(
                                conn,
                                "authenticated",
                                mechanic,
                                "accept_session_request",
                                {"request_id": r},
                            )
                        )
                    except BaseException as exc:  # the connection itself may die
                        outcome.append(exc)

                thread = threading.Thread(target=accept)
                thread.start()
                _wait_until_blocked_after_writing(stage.admin, _backend_pid(victim))
                assert stage.one("SELECT pg_terminate_backend(%s)", _backend_pid(victim)) is True
                thread.join(10)
        finally:
            victim.close()
        result = outcome[0]
        assert not (isinstance(result, Outcome) and result.ok), result
        tally(
            "pg_terminate_backend in the middle of accept", "terminated after writing, rolled back"
        )
        _assert_untouched(stage, req, mechanic, load)
    stage.assert_healthy()
    # The requests are intact: another mechanic can still accept one.
    other = stage.mechanic()
    assert stage.user(other, "accept_session_request", request_id=requests[0])


def test_backend_killed_at_a_random_instant_is_all_or_nothing(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    mechanic = stage.mechanic(capacity=100)
    requests = stage.requests(customer, TRIALS // 2)
    for req in requests:
        victim = psycopg.connect(stage.dsn)
        try:
            pid = _backend_pid(victim)
            thread = threading.Thread(
                target=attempt,
                args=(
                    victim,
                    "authenticated",
                    mechanic,
                    "accept_session_request",
                    {"request_id": req},
                ),
            )
            thread.start()
            time.sleep(
                random.uniform(0, 0.045)
            )  # a fresh backend needs ~20 ms for its first accept
            stage.admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            thread.join(10)
        finally:
            victim.close()
        status, sessions, accepted_events = stage.one(
            "SELECT status::text, (SELECT count(*) FROM autodoctor.sessions s WHERE"
            " s.request_id = r.id),"
            " (SELECT count(*) FROM autodoctor.session_events e WHERE e.request_id = r.id"
            "   AND e.event = 'request_accepted') FROM autodoctor.session_requests r WHERE"
            " r.id = %s",
            req,
        )
        assert (status, sessions, accepted_events) in (("pending", 0, 0), ("accepted", 1, 1))
        tally(
            "pg_terminate_backend at a random instant",
            "accept had committed" if status == "accepted" else "accept rolled back",
        )
    stage.assert_healthy()


def test_statement_timeout_in_the_middle_of_accept_leaves_no_partial_state(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    mechanic = stage.mechanic(capacity=100)
    requests = stage.requests(customer, TRIALS)
    blocker, victim = stage.conns[1], stage.conns[2]
    for i, req in enumerate(requests):
        load = stage.one(
            "SELECT active_sessions FROM autodoctor.mechanics WHERE user_id = %s", mechanic
        )
        setting = "statement_timeout" if i % 2 == 0 else "lock_timeout"
        with blocker.transaction():
            blocker.execute(
                "SELECT 1 FROM autodoctor.mechanics WHERE user_id = %s FOR UPDATE", (mechanic,)
            )
            try:
                with victim.transaction():
                    victim.execute(f"SET LOCAL {setting} = '20ms'")
                    act_as(victim, "authenticated", mechanic)
                    call_function(victim, "accept_session_request", {"request_id": req})
                raise AssertionError("accept should have timed out")
            except psycopg.errors.QueryCanceled:
                assert setting == "statement_timeout"
            except psycopg.errors.LockNotAvailable:
                assert setting == "lock_timeout"
        tally(
            "statement_timeout / lock_timeout in the middle of accept",
            f"{setting} fired, rolled back",
        )
        _assert_untouched(stage, req, mechanic, load)
    stage.assert_healthy()


# --- mixed load --------------------------------------------------------------------------


OPS_PER_WORKER = 150
WORKERS = 8


def test_mixed_load_never_deadlocks_and_only_fails_with_contract_codes(stage: Stage) -> None:
    customers = [new_user(stage.admin, f"Customer {i}") for i in range(4)]
    mechanics = [
        stage.mechanic(online=i % 2 == 0, expertise="{chat,video}", capacity=3) for i in range(4)
    ]
    codes: Counter[str] = Counter()
    lock = threading.Lock()

    def pick(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
        with conn.transaction():
            act_as(conn, "service_role")
            row = conn.execute(query, params).fetchone()
        return None if row is None else row[0]

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        with psycopg.connect(stage.dsn) as conn:
            # Detect a deadlock in 100 ms instead of the server's 1 s (superuser setting,
            # set before the role switch).
            conn.execute("SET deadlock_timeout = '100ms'")
            conn.commit()
            for _ in range(OPS_PER_WORKER):
                op = rnd.choice(
                    [
                        "create",
                        "create",
                        "intake",
                        "cancel",
                        "accept",
                        "accept",
                        "accept",
                        "claim",
                        "start",
                        "complete",
                        "customer_cancel",
                        "availability",
                        "maintenance",
                        "auto_assign",
                        "expire",
                        "convert",
                        "orphan",
                    ]
                )
                customer, mechanic = rnd.choice(customers), rnd.choice(mechanics)
                if op == "create":
                    out = attempt(
                        conn,
                        "authenticated",
                        customer,
                        "create_session_request",
                        {"session_type": rnd.choice(["chat", "video"]), "plan_code": "free"},
                    )
                elif op == "intake":
                    out = attempt(
                        conn,
                        "authenticated",
                        customer,
                        "submit_intake",
                        {
                            "session_type": "chat",
                            "plan_code": "free",
                            "concern": "noise",
                            "vehicle": '{"make": "Ford", "model": "Focus", "year": 2012}',
                        },
                    )
                elif op == "cancel":
                    req = pick(
                        conn,
                        "SELECT id FROM autodoctor.session_requests WHERE customer_id = %s"
                        " AND status = 'pending' ORDER BY random() LIMIT 1",
                        customer,
                    )
                    out = attempt(
                        conn,
                        "authenticated",
                        customer,
                        "cancel_session_request",
                        {"request_id": req},
                    )
                elif op == "accept":
                    req = pick(
                        conn,
                        "SELECT id FROM autodoctor.session_requests WHERE status = 'pending'"
                        " ORDER BY random() LIMIT 1",
                    )
                    out = attempt(
                        conn,
                        "authenticated",
                        mechanic,
                        "accept_session_request",
                        {"request_id": req},
                    )
                elif op == "claim":
                    sid = pick(
                        conn,
                        "SELECT id FROM autodoctor.sessions WHERE mechanic_id IS NULL"
                        " AND status IN ('pending', 'live') ORDER BY random() LIMIT 1",
                    )
                    out = attempt(
                        conn,
                        "authenticated",
                        mechanic,
                        "claim_orphaned_session",
                        {"session_id": sid},
                    )
                elif op in ("start", "complete"):
                    sid = pick(
                        conn,
                        "SELECT id FROM autodoctor.sessions WHERE mechanic_id = %s"
                        " AND status = %s ORDER BY random() LIMIT 1",
                        mechanic,
                        "waiting" if op == "start" else "live",
                    )
                    out = attempt(
                        conn,
                        "authenticated",
                        mechanic,
                        "transition_session",
                        {"session_id": sid, "to_status": "live" if op == "start" else "completed"},
                    )
                elif op == "customer_cancel":
                    sid = pick(
                        conn,
                        "SELECT id FROM autodoctor.sessions WHERE customer_user_id = %s"
                        " AND status IN ('pending', 'waiting', 'scheduled') ORDER BY random()"
                        " LIMIT 1",
                        customer,
                    )
                    out = attempt(
                        conn,
                        "authenticated",
                        customer,
                        "transition_session",
                        {"session_id": sid, "to_status": "cancelled"},
                    )
                elif op == "availability":
                    out = attempt(
                        conn,
                        "authenticated",
                        mechanic,
                        "set_mechanic_availability",
                        {"online": rnd.choice(["true", "false"])},
                    )
                elif op == "maintenance":
                    out = attempt(conn, "service_role", None, "run_maintenance", {})
                elif op == "auto_assign":
                    out = attempt(
                        conn,
                        "service_role",
                        None,
                        "auto_assign_orphaned_sessions",
                        {"batch_size": 5},
                    )
                elif op == "expire":
                    out = attempt(conn, "service_role", None, "expire_stale_requests", {})
                elif op == "convert":
                    out = attempt(conn, "service_role", None, "convert_orphaned_sessions", {})
                else:  # a legacy writer inserting an orphan directly
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status)"
                            " VALUES (%s, 'free', 'chat', %s)",
                            (customer, rnd.choice(["pending", "live"])),
                        )
                    out = Outcome(True, [])
                with lock:
                    codes[f"{op} {out}"] += 1

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    failures = {k: v for k, v in codes.items() if not k.endswith(" ok")}
    bad = {
        k: v
        for k, v in failures.items()
        if k.split(" ")[1].split(":")[0] not in ("42501", "PT404", "PT409", "PT429")
        and not k.split(" ")[1].startswith("22")
    }
    total = sum(codes.values())
    deadlocks = sum(v for k, v in codes.items() if " 40P01" in k)
    serialization = sum(v for k, v in codes.items() if " 40001" in k)
    FIGURES["mixed load"] = Counter(
        {
            "operations": total,
            "refused with a contract code": sum(failures.values()),
            "40P01 deadlocks": deadlocks,
            "40001 serialization failures": serialization,
        }
    )
    assert total == WORKERS * OPS_PER_WORKER
    assert deadlocks == 0 and serialization == 0, failures
    assert not bad, bad
    stage.assert_healthy(orphans_allowed=True, known_bugs=True)
    # After one more maintenance run no orphan is left without a mechanic or a request.
    stage.service("run_maintenance")
    stage.assert_healthy(known_bugs=True)
    if KNOWN_INVARIANT_BUGS:
        # Close what the known bugs left behind, so that the suite's own end-of-test
        # invariant check judges the rest.
        _cleanup_dangling_requests(stage)
        stage.assert_healthy()


# --- consistency races found by the tests above (fixed in the SQL; kept as regressions) ---


def _orphan(stage: Stage, customer: uuid.UUID) -> uuid.UUID:
    return uuid.UUID(
        str(
            stage.one(
                "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status)"
                " VALUES (%s, 'free', 'chat', 'pending') RETURNING id",
                customer,
            )
        )
    )


def _cleanup_dangling_requests(stage: Stage) -> None:
    """Expire pending requests whose session is no longer an orphan (what the bugs leave)."""
    stage.admin.execute(
        "UPDATE autodoctor.session_requests r SET expires_at = now() - interval '1 second'"
        "  FROM autodoctor.sessions s WHERE s.id = r.session_id AND r.status = 'pending'"
        "   AND (s.mechanic_id IS NOT NULL OR s.status NOT IN ('pending', 'live'))"
    )
    stage.service("expire_stale_requests")


def _while_a_conversion_holds_the_orphan(
    stage: Stage, orphan: uuid.UUID, who: uuid.UUID, fn: str, args: dict[str, Any]
) -> Outcome:
    """Run ``fn`` as ``who`` while convert_orphaned_sessions holds the orphan's lock with its
    new request not yet committed; commit the conversion once ``fn`` waits for the lock."""
    service, caller = stage.conns[1], stage.conns[2]
    service.execute("SELECT set_config('role', 'service_role', true)")
    assert service.execute("SELECT autodoctor.convert_orphaned_sessions()").fetchone() == (1,)
    result: list[Outcome] = []
    thread = threading.Thread(
        target=lambda: result.append(attempt(caller, "authenticated", who, fn, args))
    )
    thread.start()
    deadline = time.monotonic() + 10
    while (
        stage.one(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", _backend_pid(caller)
        )
        != "Lock"
    ):
        assert time.monotonic() < deadline, f"{fn} never waited for the orphan's lock"
        time.sleep(0.005)
    service.commit()
    thread.join(10)
    assert result, f"{fn} did not finish"
    return result[0]


def _request_status(stage: Stage, orphan: uuid.UUID) -> Any:
    return stage.one(
        "SELECT status::text FROM autodoctor.session_requests WHERE session_id = %s", orphan
    )


def test_claim_racing_a_conversion_accepts_the_new_request(stage: Stage) -> None:
    # Found by the mixed load: claim looked its request up before locking the session.
    customer = new_user(stage.admin, "Customer")
    mechanic = stage.mechanic()
    orphan = _orphan(stage, customer)
    out = _while_a_conversion_holds_the_orphan(
        stage, orphan, mechanic, "claim_orphaned_session", {"session_id": orphan}
    )
    try:
        assert out.ok, out
        assert _request_status(stage, orphan) == "accepted"
    finally:
        _cleanup_dangling_requests(stage)


def test_customer_cancelling_a_converted_orphan_cancels_its_request(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    orphan = _orphan(stage, customer)
    assert stage.service("convert_orphaned_sessions") == [(1,)]
    stage.user(customer, "transition_session", session_id=orphan, to_status="cancelled")
    try:
        assert _request_status(stage, orphan) == "cancelled"
    finally:
        _cleanup_dangling_requests(stage)


def test_customer_cancel_racing_a_conversion_cancels_the_new_request(stage: Stage) -> None:
    customer = new_user(stage.admin, "Customer")
    orphan = _orphan(stage, customer)
    out = _while_a_conversion_holds_the_orphan(
        stage,
        orphan,
        customer,
        "transition_session",
        {"session_id": orphan, "to_status": "cancelled"},
    )
    try:
        assert out.ok, out
        assert _request_status(stage, orphan) == "cancelled"
    finally:
        _cleanup_dangling_requests(stage)

"""Concurrency with real connections: exactly one winner, every loser told PT409."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import autodoctor_db as ad
import psycopg
import pytest
from autodoctor_db import errors

RACERS = 16
TRIALS = 25


def _race(db: ad.Database, mechanics: list[uuid.UUID], request_id: uuid.UUID) -> list[object]:
    barrier = threading.Barrier(len(mechanics))
    results: list[object] = [None] * len(mechanics)

    def accept(i: int, mechanic: uuid.UUID) -> None:
        try:
            with db.as_user(mechanic) as m:
                barrier.wait(10)
                results[i] = m.accept_session_request(request_id)
        except errors.AutodoctorError as exc:
            results[i] = exc

    threads = [threading.Thread(target=accept, args=(i, m)) for i, m in enumerate(mechanics)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.direct_only
def test_accept_race_has_exactly_one_winner_every_time(
    db: ad.Database,
    dsn: str,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer = make_user()
    mechanics = [make_mechanic(max_concurrent_sessions=100) for _ in range(RACERS)]
    for _ in range(TRIALS):
        with db.as_user(customer) as u:
            req = u.create_session_request("chat", "free")
        results = _race(db, mechanics, req.id)
        winners = [r for r in results if isinstance(r, ad.Session)]
        losers = [r for r in results if not isinstance(r, ad.Session)]
        assert len(winners) == 1, results
        assert all(isinstance(r, errors.RequestNotPending) for r in losers), losers
        assert all(r.sqlstate == "PT409" for r in losers if isinstance(r, errors.AutodoctorError))
        with psycopg.connect(dsn) as conn:
            n = conn.execute(
                "SELECT count(*) FROM autodoctor.sessions WHERE request_id = %s", (req.id,)
            ).fetchone()
        assert n == (1,)


@pytest.mark.parametrize("trial", range(10))
def test_capacity_holds_when_one_mechanic_accepts_two_requests_at_once(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
    trial: int,
) -> None:
    customer = make_user()
    mechanic = make_mechanic(max_concurrent_sessions=1)
    with db.as_user(customer) as u:
        reqs = [u.create_session_request("chat", "free") for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def accept(i: int) -> None:
        try:
            with db.as_user(mechanic) as m:
                barrier.wait(10)
                results[i] = m.accept_session_request(reqs[i].id)
        except errors.AutodoctorError as exc:
            results[i] = exc

    threads = [threading.Thread(target=accept, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(isinstance(r, ad.Session) for r in results) == 1, results
    assert sum(isinstance(r, errors.CapacityReached) for r in results) == 1, results


def _accept_vs_cancel(
    db: ad.Database, customer: uuid.UUID, mechanic: uuid.UUID
) -> dict[str, object]:
    with db.as_user(customer) as u:
        req = u.create_session_request("chat", "free")
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def accept() -> None:
        try:
            with db.as_user(mechanic) as m:
                barrier.wait(10)
                results["accept"] = m.accept_session_request(req.id)
        except errors.AutodoctorError as exc:
            results["accept"] = exc

    def cancel() -> None:
        try:
            with db.as_user(customer) as u:
                barrier.wait(10)
                results["cancel"] = u.cancel_session_request(req.id)
        except errors.AutodoctorError as exc:
            results["cancel"] = exc

    threads = [threading.Thread(target=accept), threading.Thread(target=cancel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_accept_races_cancel_and_exactly_one_wins(
    db: ad.Database,
    make_user: Callable[..., uuid.UUID],
    make_mechanic: Callable[..., uuid.UUID],
) -> None:
    customer = make_user()
    mechanic = make_mechanic(max_concurrent_sessions=100)
    for _ in range(20):
        results = _accept_vs_cancel(db, customer, mechanic)
        accepted = isinstance(results["accept"], ad.Session)
        cancelled = isinstance(results["cancel"], ad.SessionRequest)
        assert accepted != cancelled, results
        loser = results["cancel"] if accepted else results["accept"]
        assert isinstance(loser, errors.RequestNotPending), results

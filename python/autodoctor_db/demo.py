"""The scripted scenario behind ``make demo`` / ``autodoctor-db demo``.

A customer and three mechanics; the customer asks for a session; a listener prints every
broadcast; the three mechanics race to accept the same request at the same instant; one
wins, the other two are told it is no longer pending; the final state is printed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from . import errors
from .client import Database, connect
from .models import Event, Session


def _create_users(dsn: str, names: list[str]) -> list[uuid.UUID]:
    """Insert users into auth.users, as Supabase Auth's sign-up would (needs an admin DSN)."""
    run = uuid.uuid4().hex[:8]
    ids: list[uuid.UUID] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            row = conn.execute(
                "INSERT INTO auth.users (email, raw_user_meta_data)"
                " VALUES (%s, jsonb_build_object('full_name', %s::text)) RETURNING id",
                (f"{name.lower().split()[0]}.{run}@example.test", name),
            ).fetchone()
            assert row is not None
            ids.append(row[0])
    return ids


def _seed_orphans(dsn: str, customer: uuid.UUID) -> list[uuid.UUID]:
    """Sessions without a mechanic, as the old app's Flow 2 wrote them (needs an admin DSN)."""
    rows = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for status, age in (("live", "3 days"), ("pending", "2 hours"), ("live", "10 minutes")):
            row = conn.execute(
                "INSERT INTO autodoctor.sessions (customer_user_id, plan, type, status, created_at,"
                " metadata) VALUES (%s, 'free', 'video', %s, now() - %s::interval,"
                ' \'{"source": "intake"}\') RETURNING id',
                (customer, status, age),
            ).fetchone()
            assert row is not None
            rows.append(row[0])
    return rows


def run(dsn: str = "", *, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the scenario against ``dsn``; returns what happened (for tests)."""
    db: Database = connect(dsn, min_size=4, max_size=8)
    stop = threading.Event()
    seen: list[Event] = []
    listening = threading.Event()

    def listener() -> None:
        gen = db.notifications(timeout=0.1, stop=stop.is_set)
        listening.set()
        for ev in gen:
            seen.append(ev)
            out(
                f"  [broadcast] #{ev.id} {ev.event:<18} request={ev.request_id} "
                f"session={ev.session_id} type={ev.session_type.value if ev.session_type else None}"
            )

    thread = threading.Thread(target=listener, name="listener", daemon=True)
    thread.start()
    listening.wait(5)
    time.sleep(0.3)  # let LISTEN take effect before the first event

    out("1. Sign-ups: one customer, three mechanics (auth.users rows, profiles by trigger)")
    customer, *mechanics = _create_users(
        dsn, ["Carla Customer", "Mo Mechanic", "Nia Mechanic", "Olu Mechanic"]
    )
    with db.as_service() as svc:
        for i, m in enumerate(mechanics):
            svc.register_mechanic(m, latitude=48.85 + i / 100, longitude=2.35)
    out(f"   customer {customer}; mechanics {', '.join(str(m)[:8] for m in mechanics)}")

    out("2. The customer asks for a video session")
    with db.as_user(customer) as u:
        req = u.create_session_request(
            "video", "free", notes="Brakes squeal when cold", idempotency_key=f"demo-{customer}"
        )
    out(f"   request {req.id} is {req.status.value}, expires {req.expires_at:%Y-%m-%d %H:%M}")

    with db.as_user(mechanics[0]) as m0:
        visible = m0.incoming_requests()
    out(f"3. A mechanic's dashboard shows {len(visible)} incoming request(s)")

    out("4. Three mechanics press Accept at the same instant")
    barrier = threading.Barrier(len(mechanics))
    results: dict[uuid.UUID, Session | errors.AutodoctorError] = {}

    def accept(mechanic: uuid.UUID) -> None:
        with db.as_user(mechanic) as m:
            barrier.wait(5)
            try:
                results[mechanic] = m.accept_session_request(req.id)
            except errors.AutodoctorError as exc:
                results[mechanic] = exc

    racers = [threading.Thread(target=accept, args=(m,)) for m in mechanics]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    winners = [m for m, r in results.items() if isinstance(r, Session)]
    for m, r in results.items():
        if isinstance(r, Session):
            out(f"   {str(m)[:8]} WON: session {r.id} is {r.status.value}")
        else:
            out(f"   {str(m)[:8]} conflict: {r.sqlstate} {r.reason}: {r.message}")

    with db.as_user(customer) as u:
        final_req = u.get_session_request(req.id)
        final_session = (
            u.get_session(final_req.session_id) if final_req and final_req.session_id else None
        )
    out("5. Final state")
    if final_req is not None:
        out(
            f"   request {final_req.id}: {final_req.status.value},"
            f" mechanic {final_req.mechanic_id}, session {final_req.session_id}"
        )
    if final_session is not None:
        out(
            f"   session {final_session.id}: {final_session.status.value}, mechanic"
            f" {final_session.mechanic_id}, request {final_session.request_id}"
        )

    out("6. Flow 2, fixed: the intake form becomes a request (never a session), then accepted")
    with db.as_user(customer) as u:
        intake_req = u.submit_intake(
            "diagnostic",
            "free",
            {"make": "Peugeot", "model": "208", "year": 2019, "vin": "VF3CCHMZ6KW012345"},
            "Engine light on, loses power uphill",
            latitude=48.853,
            longitude=2.349,
        )
    time.sleep(0.3)
    out(f"   request {intake_req.id} from intake {intake_req.intake_id}: {intake_req.status.value}")
    loser_ids = [mid for mid in mechanics if mid not in winners]
    with db.as_user(loser_ids[0]) as other:
        intake_session = other.accept_session_request(intake_req.id)
    out(
        f"   accepted by {str(loser_ids[0])[:8]}: session {intake_session.id} is"
        f" {intake_session.status.value}"
    )

    out("7. Legacy orphans (written by the old intake code: no mechanic) repaired by maintenance")
    orphans = _seed_orphans(dsn, customer)
    for m in mechanics:
        with db.as_user(m) as mc:
            mc.set_mechanic_availability(True)
    with db.as_service() as svc:
        before = svc.check_invariants()
        report = svc.run_maintenance()
        after = svc.check_invariants()
    time.sleep(0.5)  # let the repairs' broadcasts print first
    out(f"   seeded {len(orphans)} orphans; invariant violations before: {len(before)}")
    out(
        f"   run_maintenance(): expired {report.expired_requests}, cancelled"
        f" {report.cancelled_orphans}, auto-assigned {report.auto_assigned}, converted"
        f" {report.converted_orphans} ({report.duration_ms} ms)"
    )
    out(f"   invariant violations after: {len(after)}")

    time.sleep(0.5)  # let the last broadcasts arrive
    stop.set()
    thread.join(5)
    db.close()
    return {
        "request": final_req,
        "session": final_session,
        "winners": winners,
        "results": results,
        "events": seen,
        "maintenance": report,
        "violations_after": after,
    }

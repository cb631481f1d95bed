"""The reference dashboard: the example service with web pages for each side.

    make dashboard            # the throwaway cluster, the demo's data, http://127.0.0.1:8765/

or, on a database of your own (see ``serve_dashboard.py``)::

    DATABASE_URL=postgresql://authenticator@127.0.0.1:5432/autodoctor AUTODOCTOR_DEV_LOGIN=1 \\
        uvicorn examples.fastapi_app.dashboard:app

Server-rendered HTML and one small script (``static/dashboard.js``), no build step:

- a mechanic sees *Requests to accept* (``incoming_requests``, nearest then oldest first)
  with an Accept button, *Upcoming and active sessions* with the state machine's moves
  that are theirs to make, and *Completed*;
- a customer sees *Active session* (with the mechanic's name), *My requests* (with the
  time left before each expires), the *New request* and *intake* forms (the contract's
  validation message shown next to the field it is about), and *Completed*;
- an operator page shows ``status()``, ``check_invariants()`` and the orphan queue.

Live updates: ONE gap-free follower of the event log (``AsyncDatabase.events``, as the
service role) per process, fanned out to every open page as server-sent events. Each
frame carries only what the NOTIFY payload already shows any listener (event name, ids,
session type, plan, time) and its cursor as the SSE ``id``; the page then re-reads its own
sections as its user, through row-level security. A page that reconnects (the browser
sends ``Last-Event-ID``) gets the events it missed, replayed from the fan-out's buffer, or
a ``resync`` when its cursor is unknown (older than the buffer, another process): either
way it re-reads what it shows, so nothing is missed and nothing reloads.

SIGN-IN IS A DEVELOPMENT STAND-IN: the picker lists every user and signs you in as any of
them with a plain cookie. It runs only on a throwaway database (``autodoctor.throwaway =
on``, as the demo's has) or with ``AUTODOCTOR_DEV_LOGIN=1``; a real deployment replaces
:func:`dev_login_allowed` and :func:`signed_in` with its authentication.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs
from uuid import UUID

import autodoctor_db as ad
import psycopg
from autodoctor_db import errors
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from psycopg.rows import dict_row

from .app import app, error_response, http_status
from .app import lifespan as api_lifespan

__all__ = ["app"]

log = logging.getLogger("autodoctor_dashboard")

HERE = Path(__file__).resolve().parent
#: The explicit flag that allows the development sign-in on any database.
DEV_LOGIN_FLAG = "AUTODOCTOR_DEV_LOGIN"
#: The development sign-in's cookie: a user id, or "operator".
COOKIE = "autodoctor_dev_user"
OPERATOR = "operator"
#: Events the fan-out keeps for pages that reconnect.
REPLAY_BUFFER = 2000
HEARTBEAT_SECONDS = 15.0

PLANS = (("free", "Free"), ("standard", "Standard (chat, video)"), ("premium", "Premium"))
SESSION_TYPES = ("video", "chat", "diagnostic")
ACTIVE = ("pending", "scheduled", "waiting", "live")
#: The state machine's moves a session's mechanic may make (docs/functions.md).
MECHANIC_MOVES: dict[str, tuple[tuple[str, str], ...]] = {
    "pending": (("waiting", "Confirm: waiting"), ("scheduled", "Schedule")),
    "scheduled": (("waiting", "Ready: waiting"),),
    "waiting": (("live", "Start session"),),
    "live": (("completed", "Complete"),),
}
#: Its customer may cancel it before it is live.
CUSTOMER_MOVES: dict[str, tuple[tuple[str, str], ...]] = {
    status: (("cancelled", "Cancel session"),) for status in ("pending", "scheduled", "waiting")
}


# --- the event fan-out -----------------------------------------------------------------


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[tuple[str, str]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=REPLAY_BUFFER)
    )
    #: Set when the queue overflowed: the page is told to re-read everything.
    overflowed: bool = False


class Hub:
    """One follower of the event log, as the service role, fanned out to every page.

    It starts at the end of the log (a page reads the current state when it loads) and
    keeps the last :data:`REPLAY_BUFFER` events, so a page that reconnects with the cursor
    of the last event it saw gets exactly the ones it missed.
    """

    def __init__(self, db: ad.AsyncDatabase) -> None:
        self.db = db
        self.recent: deque[tuple[str, str]] = deque(maxlen=REPLAY_BUFFER)  # (cursor, json)
        #: The cursor of the last event seen ("" before the first).
        self.head = ""
        self.subscribers: set[Subscriber] = set()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        after = await log_end(self.db)
        self.task = asyncio.create_task(self._follow(after), name="dashboard-events")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task
        for sub in list(self.subscribers):  # ends every open stream
            sub.overflowed = True
            _offer(sub, ("", ""))

    async def _follow(self, after: int) -> None:
        position: int | ad.EventCursor = after
        while True:
            try:
                async for event in self.db.events(after=position, role="service_role"):
                    cursor = event.cursor
                    if cursor is None:
                        continue
                    position = cursor
                    self.publish(str(cursor), hint(event))
            except asyncio.CancelledError:
                raise
            except Exception:  # the follower retries lost connections; anything else: again
                log.exception("dashboard event follower failed; restarting in 1 s")
                await asyncio.sleep(1.0)

    def publish(self, cursor: str, data: str) -> None:
        self.recent.append((cursor, data))
        self.head = cursor
        for sub in list(self.subscribers):
            if not _offer(sub, (cursor, data)):
                sub.overflowed = True

    def subscribe(self, after: str | None) -> tuple[Subscriber, list[tuple[str, str]] | None]:
        """A new subscriber, and the buffered events after ``after`` (``None``: unknown
        cursor, the page must re-read everything)."""
        sub = Subscriber()
        self.subscribers.add(sub)
        if after is None or after == "":
            return sub, None
        if after == self.head:
            return sub, []
        cursors = [c for c, _ in self.recent]
        if after not in cursors:
            return sub, None
        return sub, list(self.recent)[cursors.index(after) + 1 :]


def _offer(sub: Subscriber, item: tuple[str, str]) -> bool:
    try:
        sub.queue.put_nowait(item)
    except asyncio.QueueFull:
        return False
    return True


def hint(event: ad.Event) -> str:
    """What a page is told of an event: the NOTIFY payload's fields (docs/functions.md,
    "Events"), which any role may LISTEN to; never names, notes or actors."""
    return json.dumps(
        {
            "event": str(event.event),
            "request_id": str(event.request_id) if event.request_id else None,
            "session_id": str(event.session_id) if event.session_id else None,
            "session_type": str(event.session_type) if event.session_type else None,
            "plan_code": event.plan_code,
            "at": event.at.isoformat() if event.at else None,
            "cursor": str(event.cursor),
        }
    )


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.dashboard_hub
    return hub


@asynccontextmanager
async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
    async with api_lifespan(app_):
        hub = Hub(app_.state.db)
        app_.state.dashboard_hub = hub
        app_.state.dev_login = None
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()


# The example service, with the dashboard's pages and the fan-out's lifespan added.
app.router.lifespan_context = lifespan
app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")


# --- SQL the driver has no call for: the picker, names, a customer's own requests -------


async def query(
    db: ad.AsyncDatabase, sql: str, params: Iterable[Any] = (), *, user: UUID | None = None
) -> list[dict[str, Any]]:
    """One read-only transaction as ``user`` (row-level security) or the service role."""
    role = "authenticated" if user is not None else "service_role"
    claims = json.dumps({"role": role, **({"sub": str(user)} if user else {})})
    try:
        async with db.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                (role, claims),
            )
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, tuple(params))
            rows: list[dict[str, Any]] = await cur.fetchall()
            return rows
    except psycopg.Error as exc:
        raise errors.from_psycopg(exc) from exc


async def log_end(db: ad.AsyncDatabase) -> int:
    rows = await query(db, "SELECT coalesce(max(id), 0) AS id FROM autodoctor.session_events")
    return int(rows[0]["id"])


async def names(db: ad.AsyncDatabase, ids: Iterable[UUID | None]) -> dict[UUID, str]:
    """Display names (profiles.full_name) of users; read as the service role, because a
    customer may not read the mechanic's profile (nor a mechanic the customer's)."""
    wanted = sorted({i for i in ids if i is not None}, key=str)
    if not wanted:
        return {}
    rows = await query(
        db, "SELECT id, full_name FROM autodoctor.profiles WHERE id = ANY(%s)", (wanted,)
    )
    return {r["id"]: r["full_name"] or str(r["id"])[:8] for r in rows}


@dataclass(frozen=True)
class Who:
    """The signed-in dashboard user."""

    user_id: UUID | None  # None: the operator (service role)
    name: str
    is_mechanic: bool

    @property
    def kind(self) -> str:
        return (
            "operator" if self.user_id is None else "mechanic" if self.is_mechanic else "customer"
        )


async def dev_login_allowed(request: Request) -> tuple[bool, str]:
    """Whether the development sign-in may run here, and why (checked once per process)."""
    cached: tuple[bool, str] | None = request.app.state.dev_login
    if cached is not None:
        return cached
    if os.environ.get(DEV_LOGIN_FLAG) == "1":
        verdict = (True, f"{DEV_LOGIN_FLAG}=1")
    else:
        rows = await query(
            request.app.state.db,
            "SELECT current_setting('autodoctor.throwaway', true) = 'on' AS throwaway,"
            " current_database() AS name",
        )
        throwaway, name = bool(rows[0]["throwaway"]), str(rows[0]["name"])
        verdict = (
            (True, f"database {name!r} is a throwaway one")
            if throwaway
            else (False, f"database {name!r} is not a throwaway database")
        )
    request.app.state.dev_login = verdict
    return verdict


class SignInNeeded(Exception):
    pass


class DevLoginRefused(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


async def signed_in(request: Request) -> Who:
    """The dashboard's caller. STAND-IN: a real service verifies its session or JWT here."""
    allowed, why = await dev_login_allowed(request)
    if not allowed:
        raise DevLoginRefused(why)
    value = request.cookies.get(COOKIE, "")
    if value == OPERATOR:
        return Who(None, "Operator", False)
    try:
        uid = UUID(value)
    except ValueError:
        raise SignInNeeded() from None
    rows = await query(
        request.app.state.db,
        "SELECT p.full_name, EXISTS (SELECT 1 FROM autodoctor.mechanics m"
        "  WHERE m.user_id = p.id AND m.active) AS is_mechanic"
        " FROM autodoctor.profiles p WHERE p.id = %s",
        (uid,),
    )
    if not rows:
        raise SignInNeeded()
    return Who(uid, rows[0]["full_name"] or str(uid)[:8], bool(rows[0]["is_mechanic"]))


SignedIn = Annotated[Who, Depends(signed_in)]


def database(request: Request) -> ad.AsyncDatabase:
    db: ad.AsyncDatabase = request.app.state.db
    return db


DB = Annotated[ad.AsyncDatabase, Depends(database)]


@app.exception_handler(SignInNeeded)
async def sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/dashboard/login", 303)
    return JSONResponse({"ok": False, "message": "Sign in first."}, 401)


@app.exception_handler(DevLoginRefused)
async def dev_login_refused(request: Request, exc: DevLoginRefused) -> Response:
    body = page(
        "Development sign-in refused",
        f"""<main><h1>Development sign-in refused</h1>
<p>The dashboard signs you in as any user without a password: a development stand-in.
It runs only on a throwaway database (<code>autodoctor.throwaway = on</code>, as
<code>make dashboard</code> sets up) or with <code>{DEV_LOGIN_FLAG}=1</code>.</p>
<p>Here: {h(exc.why)}.</p></main>""",
    )
    return HTMLResponse(body, 403)


# --- HTML -------------------------------------------------------------------------------


def h(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, who: Who | None = None, cursor: str = "") -> str:
    data = f' data-cursor="{h(cursor)}" data-kind="{h(who.kind)}"' if who else ""
    header = ""
    if who is not None:
        header = f"""<header class="top">
<p class="dev" role="note"><strong>Development sign-in</strong>: fake users, no password.</p>
<p>Signed in as <strong id="me">{h(who.name)}</strong> ({h(who.kind)})
<form method="post" action="/dashboard/logout" class="inline">
<button type="submit">Sign out</button></form></p>
<p class="live" id="live-state" aria-live="polite">Connecting to live updates…</p>
</header>"""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(title)} · autodoctor</title>
<link rel="stylesheet" href="/dashboard/static/dashboard.css">
<script src="/dashboard/static/dashboard.js" defer></script>
</head><body{data}>
{header}
{body}
</body></html>"""


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def left(until: datetime, now: datetime) -> str:
    seconds = int((until - now).total_seconds())
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min {rest % 60:02d} s left"


def moves_form(session_id: UUID, moves: Iterable[tuple[str, str]]) -> str:
    buttons = "".join(
        f'<button type="submit" name="to_status" value="{h(to)}"'
        f' id="move-{h(session_id)}-{h(to)}">{h(label)}</button>'
        for to, label in moves
    )
    if not buttons:
        return ""
    return (
        f'<form method="post" action="/dashboard/sessions/{h(session_id)}/transition"'
        f' class="js-action moves">{buttons}</form>'
    )


def session_item(s: ad.MySession, other: str, other_label: str, moves: str, now: datetime) -> str:
    when = (
        f"started {ago(s.started_at, now)}"
        if s.status == "live"
        else f"ended {ago(s.ended_at, now)}"
        if s.ended_at
        else f"created {ago(s.created_at, now)}"
    )
    return f"""<li class="card" data-session-id="{h(s.id)}" data-status="{h(s.status)}">
<p><span class="badge status-{h(s.status)}">{h(s.status)}</span>
<strong>{h(s.session_type)}</strong> session · {h(s.plan_code)} plan</p>
<p>{h(other_label)}: <strong class="{h(other_label.lower())}-name">{h(other)}</strong></p>
<p class="muted">{h(when)}{f" · {s.duration_minutes} min" if s.duration_minutes else ""}</p>
{moves}</li>"""


def section(title: str, sid: str, items: list[str], empty: str) -> str:
    inner = f"<ul>{''.join(items)}</ul>" if items else f'<p class="muted">{h(empty)}</p>'
    return f"""<section id="{sid}" aria-labelledby="{sid}-title">
<h2 id="{sid}-title">{h(title)} <span class="count">{len(items)}</span></h2>{inner}</section>"""


def distance(km: Decimal | None) -> str:
    return f"{km} km away" if km is not None else "no distance (no location)"


async def mechanic_sections(db: ad.AsyncDatabase, who: Who) -> str:
    assert who.user_id is not None
    async with db.as_user(who.user_id, read_only=True) as m:
        incoming = await m.incoming_requests(limit=100)
        sessions = await m.my_sessions(limit=100)
    mine = [s for s in sessions if s.my_role == "mechanic"]
    who_is = await names(db, [s.customer_user_id for s in mine])
    now = datetime.now(timezone.utc)
    far = Decimal("1e9")
    incoming.sort(key=lambda r: (r.distance_km if r.distance_km is not None else far, r.created_at))
    requests = [
        f"""<li class="card" data-request-id="{h(r.id)}">
<p><strong>{h(r.session_type)}</strong> · {h(r.plan_code)} plan ·
{h(r.customer_name or "a customer")}</p>
<p>{h(r.notes or "(no notes)")}</p>
<p class="muted">{h(distance(r.distance_km))} · asked {h(ago(r.created_at, now))} ·
<time class="countdown" datetime="{h(r.expires_at.isoformat())}">
{h(left(r.expires_at, now))}</time></p>
<form method="post" action="/dashboard/requests/{h(r.id)}/accept" class="js-action">
<button type="submit" class="primary" id="accept-{h(r.id)}">Accept</button></form></li>"""
        for r in incoming
    ]
    active = [
        session_item(
            s,
            who_is.get(s.customer_user_id, "unknown") if s.customer_user_id else "none",
            "Customer",
            moves_form(s.id, MECHANIC_MOVES.get(str(s.status), ())),
            now,
        )
        for s in mine
        if s.status in ACTIVE
    ]
    done = [
        session_item(
            s,
            who_is.get(s.customer_user_id, "unknown") if s.customer_user_id else "none",
            "Customer",
            "",
            now,
        )
        for s in mine
        if s.status not in ACTIVE
    ]
    return "".join(
        [
            section("Requests to accept", "incoming", requests, "No request is waiting for you."),
            section("Upcoming and active sessions", "active", active, "No session yet."),
            section("Completed", "completed", done, "Nothing completed yet."),
        ]
    )


async def customer_sections(db: ad.AsyncDatabase, who: Who) -> str:
    assert who.user_id is not None
    async with db.as_user(who.user_id, read_only=True) as u:
        sessions = [s for s in await u.my_sessions(limit=100) if s.my_role == "customer"]
    requests = await query(
        db,
        "SELECT id, status::text AS status, session_type::text AS session_type, plan_code,"
        " notes, created_at, expires_at, session_id, intake_id"
        " FROM autodoctor.session_requests WHERE customer_id = %s"
        " ORDER BY created_at DESC LIMIT 20",
        (who.user_id,),
        user=who.user_id,
    )
    who_is = await names(db, [s.mechanic_id for s in sessions])
    now = datetime.now(timezone.utc)

    def mechanic(s: ad.MySession) -> str:
        if s.mechanic_id is None:
            return "not assigned yet"
        return who_is.get(s.mechanic_id, "unknown")

    active = [
        session_item(
            s, mechanic(s), "Mechanic", moves_form(s.id, CUSTOMER_MOVES.get(str(s.status), ())), now
        )
        for s in sessions
        if s.status in ACTIVE
    ]
    done = [
        session_item(s, mechanic(s), "Mechanic", "", now)
        for s in sessions
        if s.status not in ACTIVE
    ]
    mine = []
    for r in requests:
        pending = r["status"] == "pending" and r["expires_at"] > now
        status = r["status"] if r["status"] != "pending" or pending else "expired"
        extra = (
            f"""<time class="countdown" datetime="{h(r["expires_at"].isoformat())}">
{h(left(r["expires_at"], now))}</time>
<form method="post" action="/dashboard/requests/{h(r["id"])}/cancel" class="js-action">
<button type="submit" id="cancel-{h(r["id"])}">Withdraw request</button></form>"""
            if pending
            else ""
        )
        mine.append(
            f"""<li class="card" data-request-id="{h(r["id"])}" data-status="{h(status)}">
<p><span class="badge status-{h(status)}">{h(status)}</span> <strong>{h(r["session_type"])}</strong>
· {h(r["plan_code"])} plan{" · from an intake" if r["intake_id"] else ""}</p>
<p>{h(r["notes"] or "(no notes)")}</p>
<p class="muted">asked {h(ago(r["created_at"], now))} {extra}</p></li>"""
        )
    return "".join(
        [
            section("Active session", "active", active, "No active session."),
            section("My requests", "requests", mine, "No request yet: ask for a session below."),
            section("Completed", "completed", done, "Nothing completed yet."),
        ]
    )


async def operator_sections(db: ad.AsyncDatabase) -> str:
    async with db.as_service(read_only=True) as svc:
        st = await svc.status()
        violations = await svc.check_invariants()
        orphans = await svc.orphaned_sessions(limit=100)
    rows = [
        ("pending requests", st.pending_requests),
        (
            "oldest pending",
            str(st.oldest_pending_age).split(".")[0] if st.oldest_pending_age else "-",
        ),
        ("waiting sessions", st.waiting_sessions),
        ("live sessions", st.live_sessions),
        ("orphaned sessions", st.orphaned_sessions),
        ("expired today", st.expired_today),
        ("e-mails queued", st.outbox_pending),
        ("mechanics online", st.mechanics_online),
    ]
    status_html = "".join(f"<tr><th scope='row'>{h(k)}</th><td>{h(v)}</td></tr>" for k, v in rows)
    violation_items = [
        f"<li class='card bad'><strong>{h(v.invariant)}</strong>"
        f" <code>{h(json.dumps(v.detail))}</code></li>"
        for v in violations
    ]

    def orphan(o: ad.OrphanedSession) -> str:
        until = o.pending_request_expires_at
        request = f"request pending until {until:%Y-%m-%d %H:%M}" if until else "no request yet"
        return f"""<li class="card"><span class="badge status-{h(o.status)}">{h(o.status)}</span>
<strong>{h(o.session_type)}</strong> · {h(o.plan_code)} plan · age {h(str(o.age).split(".")[0])}
<p class="muted">session {h(o.id)} · {h(request)}</p></li>"""

    orphan_items = [orphan(o) for o in orphans]
    return "".join(
        [
            f"""<section id="status" aria-labelledby="status-title">
<h2 id="status-title">Status</h2>
<table>{status_html}</table>
<form method="post" action="/dashboard/operator/maintenance" class="js-action">
<button type="submit" id="run-maintenance">Run maintenance now</button></form></section>""",
            section(
                "Invariant violations",
                "invariants",
                violation_items,
                "None: every invariant holds.",
            ),
            section("Orphan queue", "orphans", orphan_items, "No orphaned session."),
        ]
    )


async def sections_for(db: ad.AsyncDatabase, who: Who) -> str:
    if who.user_id is None:
        return await operator_sections(db)
    if who.is_mechanic:
        return await mechanic_sections(db, who)
    return await customer_sections(db, who)


def field_input(form: str, name: str, label: str, control: str, help_text: str = "") -> str:
    """A labelled field with its error slot (aria-describedby points at both)."""
    fid = f"{form}-{name}"
    described = f"{fid}-error" + (f" {fid}-help" if help_text else "")
    control = control.replace("@F", f'id="{fid}" name="{name}" aria-describedby="{described}"')
    helper = f'<small id="{fid}-help" class="muted">{h(help_text)}</small>' if help_text else ""
    return f"""<div class="field"><label for="{fid}">{h(label)}</label>{control}{helper}
<p class="error" id="{fid}-error" data-field="{name}"></p></div>"""


def select(options: Iterable[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{h(v)}">{h(t)}</option>' for v, t in options)
    return f"<select @F>{opts}</select>"


def customer_forms() -> str:
    types = [(t, t) for t in SESSION_TYPES]
    new = "".join(
        [
            field_input("new", "session_type", "Session type", select(types)),
            field_input("new", "plan_code", "Plan", select(PLANS)),
            field_input(
                "new",
                "notes",
                "Notes for the mechanic",
                "<textarea @F rows='2'></textarea>",
                "Optional, at most 2000 characters.",
            ),
        ]
    )
    intake = "".join(
        [
            field_input(
                "intake",
                "session_type",
                "Session type",
                select([("diagnostic", "diagnostic"), *types[:2]]),
            ),
            field_input("intake", "plan_code", "Plan", select(PLANS)),
            field_input("intake", "make", "Make", "<input @F autocomplete='off'>"),
            field_input("intake", "model", "Model", "<input @F autocomplete='off'>"),
            field_input("intake", "year", "Year", "<input @F inputmode='numeric'>"),
            field_input(
                "intake",
                "vin",
                "VIN",
                "<input @F autocomplete='off'>",
                "Optional: 17 characters.",
            ),
            field_input("intake", "concern", "What is wrong?", "<textarea @F rows='3'></textarea>"),
            field_input(
                "intake",
                "latitude",
                "Latitude",
                "<input @F inputmode='decimal'>",
                "Optional, with longitude.",
            ),
            field_input("intake", "longitude", "Longitude", "<input @F inputmode='decimal'>"),
        ]
    )
    return f"""<section id="new-request" aria-labelledby="new-title">
<h2 id="new-title">New request</h2>
<form method="post" action="/dashboard/requests" class="js-action" id="new-form" novalidate>
<p class="error form-error" data-field="" id="new-form-error"></p>
{new}<button type="submit" class="primary" id="new-submit">Ask for a session</button>
</form></section>
<section id="intake" aria-labelledby="intake-title">
<h2 id="intake-title">Intake: tell us about the car</h2>
<form method="post" action="/dashboard/intake" class="js-action" id="intake-form" novalidate>
<p class="error form-error" data-field="" id="intake-form-error"></p>
{intake}<button type="submit" class="primary" id="intake-submit">Submit the intake</button>
</form></section>"""


@app.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/", 307)


@app.get("/dashboard", include_in_schema=False)
@app.get("/dashboard/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard(request: Request, db: DB, who: SignedIn) -> HTMLResponse:
    hub = hub_of(request)
    cursor = hub.head  # before reading: every event after it will reach the page
    sections = await sections_for(db, who)
    forms = customer_forms() if who.kind == "customer" else ""
    title = {"operator": "Operations", "mechanic": "Mechanic", "customer": "Customer"}[who.kind]
    body = f"""<main>
<h1>{h(title)} dashboard</h1>
<div id="flash" role="alert" aria-live="assertive"></div>
<div id="sections">{sections}</div>
{forms}
<section id="log" aria-labelledby="log-title"><h2 id="log-title">Live events</h2>
<ol id="events" aria-live="off"></ol></section>
</main>"""
    return HTMLResponse(page(f"{title} dashboard", body, who=who, cursor=cursor))


@app.get("/dashboard/sections", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_sections(db: DB, who: SignedIn) -> HTMLResponse:
    return HTMLResponse(await sections_for(db, who), headers={"Cache-Control": "no-store"})


@app.get("/dashboard/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page(request: Request, db: DB) -> HTMLResponse:
    allowed, why = await dev_login_allowed(request)
    if not allowed:
        raise DevLoginRefused(why)
    users = await query(
        db,
        "SELECT p.id, p.full_name, p.created_at, m.user_id IS NOT NULL AS is_mechanic"
        " FROM autodoctor.profiles p"
        " LEFT JOIN autodoctor.mechanics m ON m.user_id = p.id AND m.active"
        " ORDER BY m.user_id IS NULL, p.created_at DESC, p.full_name LIMIT 200",
    )

    def buttons(mechanics: bool) -> str:
        items = [
            f'<li><button type="submit" name="user" value="{h(u["id"])}">'
            f"{h(u['full_name'] or '(no name)')}"
            f' <span class="muted">{h(str(u["id"])[:8])}</span></button></li>'
            for u in users
            if bool(u["is_mechanic"]) == mechanics
        ]
        return (
            f"<ul class='picker'>{''.join(items)}</ul>" if items else "<p class='muted'>None.</p>"
        )

    body = f"""<main><h1>Sign in</h1>
<p class="dev" role="note"><strong>Development only.</strong> Pick any user: no password,
a plain cookie. This runs because {h(why)}; a real deployment signs users in with its
own authentication (replace <code>signed_in</code> in <code>dashboard.py</code>).</p>
<form method="post" action="/dashboard/login">
<h2>Mechanics</h2>{buttons(True)}
<h2>Customers</h2>{buttons(False)}
<h2>Operations</h2><ul class="picker">
<li><button type="submit" name="user" value="{OPERATOR}">Operator
<span class="muted">status, invariants, orphans</span></button></li></ul>
</form></main>"""
    return HTMLResponse(page("Sign in", body))


async def form_data(request: Request) -> dict[str, str]:
    """An urlencoded form body (no multipart: nothing here uploads files)."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


@app.post("/dashboard/login", include_in_schema=False)
async def login(request: Request) -> Response:
    allowed, why = await dev_login_allowed(request)
    if not allowed:
        raise DevLoginRefused(why)
    user = (await form_data(request)).get("user", "")
    if user != OPERATOR:
        try:
            user = str(UUID(user))
        except ValueError:
            return RedirectResponse("/dashboard/login", 303)
    response = RedirectResponse("/dashboard/", 303)
    response.set_cookie(COOKIE, user, httponly=True, samesite="strict")
    return response


@app.post("/dashboard/logout", include_in_schema=False)
async def logout() -> Response:
    response = RedirectResponse("/dashboard/login", 303)
    response.delete_cookie(COOKIE)
    return response


# --- actions: JSON for the page's script, a redirect for a plain form post ---------------

#: Which form field a contract error is about (its reason; the message for the vehicle).
FIELD_OF_REASON = {
    "invalid_session_type": "session_type",
    "unknown_plan": "plan_code",
    "plan_forbids_type": "plan_code",
    "notes_too_long": "notes",
    "invalid_concern": "concern",
    "invalid_coordinates": "latitude",
}


def field_of(exc: errors.AutodoctorError) -> str:
    if exc.reason == "invalid_vehicle":
        text = (exc.message or "").lower()
        if "year" in text:
            return "year"
        if "vin" in text:
            return "vin"
        if "model" in text and "make" not in text:
            return "model"
        return "make"
    return FIELD_OF_REASON.get(exc.reason or "", "")


FRIENDLY = {
    "request_not_pending": "Another mechanic was faster: this request has already been taken.",
    "request_expired": "Too late: this request has expired.",
}


async def act(request: Request, who: Who, action: Callable[[], Awaitable[str]]) -> Response:
    """Run one action; answer the page's script in JSON, a plain form with a redirect."""
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        message = await action()
    except errors.AutodoctorError as exc:
        status = http_status(exc)
        if status >= 500 or not wants_json:
            if not wants_json:
                return RedirectResponse("/dashboard/", 303)
            return error_response(exc)
        body = {
            "ok": False,
            "code": exc.sqlstate,
            "reason": exc.reason,
            "message": FRIENDLY.get(exc.reason or "", exc.message),
            "detail": exc.message,
            "hint": None if exc.reason in FRIENDLY else exc.hint,
            "field": field_of(exc),
        }
        return JSONResponse(body, status)
    if not wants_json:
        return RedirectResponse("/dashboard/", 303)
    return JSONResponse({"ok": True, "message": message})


def need_user(who: Who) -> UUID:
    if who.user_id is None:
        raise errors.Forbidden(
            "the operator acts as the service role, not as a user",
            sqlstate="42501",
            reason="not_authenticated",
        )
    return who.user_id


def text_or_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def number(value: str | None, name: str) -> float | None:
    text = text_or_none(value)
    if text is None:
        return None
    try:
        return float(text.replace(",", "."))
    except ValueError:
        raise errors.InvalidInput(
            f"{name} must be a number", sqlstate="22023", reason="invalid_coordinates"
        ) from None


@app.post("/dashboard/requests", include_in_schema=False)
async def new_request(request: Request, db: DB, who: SignedIn) -> Response:
    form = await form_data(request)

    async def run() -> str:
        async with db.as_user(need_user(who)) as u:
            req = await u.create_session_request(
                form.get("session_type", ""),
                form.get("plan_code", ""),
                notes=text_or_none(form.get("notes")),
                idempotency_key=text_or_none(form.get("idempotency_key")),
            )
        expiry = left(req.expires_at, datetime.now(timezone.utc))
        return f"Request sent: mechanics can see it now ({expiry})."

    return await act(request, who, run)


@app.post("/dashboard/intake", include_in_schema=False)
async def intake(request: Request, db: DB, who: SignedIn) -> Response:
    form = await form_data(request)

    async def run() -> str:
        year_text = (form.get("year") or "").strip()
        year: int | str | None = int(year_text) if year_text.isdigit() else year_text or None
        vehicle = {
            "make": (form.get("make") or "").strip(),
            "model": (form.get("model") or "").strip(),
            "year": year,
            "vin": text_or_none(form.get("vin")),
        }
        latitude = number(form.get("latitude"), "latitude")
        longitude = number(form.get("longitude"), "longitude")
        async with db.as_user(need_user(who)) as u:
            await u.submit_intake(
                form.get("session_type", ""),
                form.get("plan_code", ""),
                vehicle,
                form.get("concern") or "",
                latitude=latitude,
                longitude=longitude,
                idempotency_key=text_or_none(form.get("idempotency_key")),
            )
        return "Intake received: it is a request now, waiting for a mechanic."

    return await act(request, who, run)


@app.post("/dashboard/requests/{request_id}/accept", include_in_schema=False)
async def accept(request: Request, request_id: str, db: DB, who: SignedIn) -> Response:
    async def run() -> str:
        async with db.as_user(need_user(who)) as m:
            session = await m.accept_session_request(request_id)
        return f"You got it: session {str(session.id)[:8]} is {session.status}."

    return await act(request, who, run)


@app.post("/dashboard/requests/{request_id}/cancel", include_in_schema=False)
async def cancel(request: Request, request_id: str, db: DB, who: SignedIn) -> Response:
    async def run() -> str:
        async with db.as_user(need_user(who)) as u:
            await u.cancel_session_request(request_id)
        return "Request withdrawn."

    return await act(request, who, run)


@app.post("/dashboard/sessions/{session_id}/transition", include_in_schema=False)
async def move(request: Request, session_id: str, db: DB, who: SignedIn) -> Response:
    to_status = (await form_data(request)).get("to_status", "")

    async def run() -> str:
        async with db.as_user(need_user(who)) as u:
            session = await u.transition_session(session_id, to_status)
        return f"Session {str(session.id)[:8]} is {session.status} now."

    return await act(request, who, run)


@app.post("/dashboard/operator/maintenance", include_in_schema=False)
async def maintenance(request: Request, db: DB, who: SignedIn) -> Response:
    async def run() -> str:
        if who.user_id is not None:
            raise errors.Forbidden("operators only", sqlstate="42501", reason="not_authenticated")
        async with db.as_service() as svc:
            r = await svc.run_maintenance()
        return (
            f"Maintenance: expired {r.expired_requests}, cancelled {r.cancelled_orphans},"
            f" auto-assigned {r.auto_assigned}, converted {r.converted_orphans}"
            f" ({r.duration_ms:.0f} ms)."
        )

    return await act(request, who, run)


# --- live updates ---------------------------------------------------------------------------


async def stream(hub: Hub, after: str | None) -> AsyncIterator[str]:
    sub, backlog = hub.subscribe(after)
    try:
        yield "retry: 1000\n\n"
        if backlog is None:
            yield f"event: resync\ndata: {json.dumps({'cursor': hub.head})}\n\n"
            if hub.head:
                yield f"id: {hub.head}\n\n"  # where this page resumes from
        for cursor, data in backlog or ():
            yield f"id: {cursor}\ndata: {data}\n\n"
        while True:
            try:
                cursor, data = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if sub.overflowed and not cursor:
                return  # the hub stopped
            if sub.overflowed:  # events were dropped for this page: re-read everything
                sub.overflowed = False
                yield f"event: resync\ndata: {json.dumps({'cursor': cursor})}\n\n"
            yield f"id: {cursor}\ndata: {data}\n\n"
    finally:
        hub.subscribers.discard(sub)


@app.get("/dashboard/events", include_in_schema=False)
async def dashboard_events(
    request: Request,
    who: SignedIn,
    after: Annotated[str | None, Query()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The fan-out as server-sent events; ``Last-Event-ID`` (the browser's reconnect) or
    ``?after=`` (the page's first connection: the cursor it was rendered at) says where
    to resume."""
    return StreamingResponse(
        stream(hub_of(request), last_event_id if last_event_id is not None else after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

"""The SQL the driver sends: one literal query per contract function.

Each query calls one ``autodoctor`` function and reads its row back with the columns
the dataclasses in :mod:`autodoctor_db.models` expect. A location is read as PostGIS's
text form (hex EWKB, by the type's own output function) and turned into latitude and
longitude by :func:`autodoctor_db.models.model_row`: no query names PostGIS, which may
live in any schema.
Parameters are always passed apart from the query text.
"""

from __future__ import annotations

from typing import Final

REQUEST_COLUMNS: Final = """
    r.id, r.created_at, r.updated_at, r.customer_id, r.mechanic_id,
    r.session_type::text AS session_type, r.plan_code, r.status::text AS status,
    r.customer_name, r.customer_email, r.notes, r.accepted_at, r.notification_sent_at,
    r.metadata, r.intake_id, r.expires_at, r.session_id, r.idempotency_key,
    r.location::text AS location,
    r.cancelled_at, r.expired_at
"""

SESSION_COLUMNS: Final = """
    s.id, s.created_at, s.updated_at, s.mechanic_id, s.customer_user_id, s.customer_email,
    s.plan, s.type::text AS type, s.status::text AS status, s.stripe_session_id,
    s.intake_id, s.scheduled_start, s.scheduled_end, s.scheduled_for, s.started_at,
    s.ended_at, s.duration_minutes, s.metadata, s.request_id, s.cancel_reason
"""

MECHANIC_COLUMNS: Final = """
    m.user_id, m.active, m.online, m.expertise::text[] AS expertise,
    m.location::text AS location,
    m.service_radius_km, m.max_concurrent_sessions, m.created_at, m.updated_at
"""

#: Acts as a user for the rest of the transaction, exactly as PostgREST does.
SET_CALLER: Final = """
SELECT set_config('role', %(role)s, true),
       set_config('request.jwt.claims', %(claims)s, true)
"""

CREATE_SESSION_REQUEST: Final = (
    "SELECT"
    + REQUEST_COLUMNS
    + """
  FROM autodoctor.create_session_request(
           session_type => %(session_type)s::autodoctor.session_type,
           plan_code => %(plan_code)s,
           notes => %(notes)s,
           idempotency_key => %(idempotency_key)s) AS r
"""
)

CANCEL_SESSION_REQUEST: Final = (
    "SELECT"
    + REQUEST_COLUMNS
    + """
  FROM autodoctor.cancel_session_request(request_id => %(request_id)s::uuid) AS r
"""
)

ACCEPT_SESSION_REQUEST: Final = (
    "SELECT"
    + SESSION_COLUMNS
    + """
  FROM autodoctor.accept_session_request(request_id => %(request_id)s::uuid) AS s
"""
)

REGISTER_MECHANIC: Final = (
    "SELECT"
    + MECHANIC_COLUMNS
    + """
  FROM autodoctor.register_mechanic(
           user_id => %(user_id)s::uuid,
           expertise => %(expertise)s::autodoctor.session_type[],
           latitude => %(latitude)s::double precision,
           longitude => %(longitude)s::double precision,
           service_radius_km => %(service_radius_km)s::numeric,
           max_concurrent_sessions => %(max_concurrent_sessions)s::integer) AS m
"""
)

SET_MECHANIC_AVAILABILITY: Final = (
    "SELECT"
    + MECHANIC_COLUMNS
    + """
  FROM autodoctor.set_mechanic_availability(
           online => %(online)s::boolean,
           latitude => %(latitude)s::double precision,
           longitude => %(longitude)s::double precision) AS m
"""
)

#: The mechanic's dashboard. ``{limit}`` is filled in as a literal integer by
#: ``calls.incoming_requests`` (never a parameter): a statement without parameters,
#: prepared, runs one cached generic plan, whereas with ``LIMIT $1`` PostgreSQL plans it
#: anew on every call (its generic estimate for an unknown limit loses to every custom
#: plan), and planning this view through the request policy costs more than running it:
#: 2.2 ms against 0.8 ms a call at 50,000 pending requests.
INCOMING_REQUESTS: Final = """
SELECT id, created_at, expires_at, session_type::text AS session_type, plan_code,
       customer_name, notes, intake_id, distance_km
  FROM autodoctor.incoming_requests
 LIMIT {limit}
"""

#: Reading the table as a user: every column but customer_email, which authenticated
#: may not read (the functions return it to its customer with the rest of the row).
USER_REQUEST_COLUMNS: Final = REQUEST_COLUMNS.replace(
    "r.customer_email,", "NULL::text AS customer_email,"
)

GET_SESSION_REQUEST: Final = (
    "SELECT"
    + USER_REQUEST_COLUMNS
    + """
  FROM autodoctor.session_requests AS r
 WHERE r.id = %(request_id)s::uuid
"""
)

GET_SESSION: Final = (
    "SELECT"
    + SESSION_COLUMNS
    + """
  FROM autodoctor.sessions AS s
 WHERE s.id = %(session_id)s::uuid
"""
)

EVENT_COLUMNS: Final = """
    e.id, e.event, e.at, e.request_id, e.session_id, e.session_type::text AS session_type,
    e.plan_code, e.actor_id, e.from_status, e.to_status, e.detail, e.txid::text::bigint AS txid
"""

#: Events the caller may see with an id above ``after`` (in id order; not gap-safe: use
#: the watermark query below to follow the log).
EVENTS_AFTER: Final = (
    "SELECT"
    + EVENT_COLUMNS
    + """
  FROM autodoctor.session_events AS e
 WHERE e.id > %(after)s
 ORDER BY e.id
 LIMIT %(limit)s
"""
)

#: The final slice of the log after a (txid, id) cursor: only events below the oldest
#: running transaction that has logged an event (``event_watermark()``) are returned. No
#: event can later appear below the cursor: commit-order safe. The mark is read once per
#: statement (an InitPlan).
EVENTS_FINAL_AFTER: Final = (
    "SELECT"
    + EVENT_COLUMNS
    + """
  FROM autodoctor.session_events AS e
 WHERE (e.txid, e.id) > (%(txid)s::text::xid8, %(id)s::bigint)
   AND e.txid < (SELECT autodoctor.event_watermark())
 ORDER BY e.txid, e.id
 LIMIT %(limit)s
"""
)

#: The cursor of one event, to resume after it.
EVENT_CURSOR: Final = """
SELECT e.txid::text::bigint, e.id FROM autodoctor.session_events AS e WHERE e.id = %(id)s
"""

#: The oldest event still in the log (history may be bounded by retention).
OLDEST_EVENT: Final = "SELECT min(e.id) FROM autodoctor.session_events AS e"

SUBMIT_INTAKE: Final = (
    "SELECT"
    + REQUEST_COLUMNS
    + """
  FROM autodoctor.submit_intake(
           session_type => %(session_type)s::autodoctor.session_type,
           plan_code => %(plan_code)s,
           vehicle => %(vehicle)s::jsonb,
           concern => %(concern)s,
           latitude => %(latitude)s::double precision,
           longitude => %(longitude)s::double precision,
           idempotency_key => %(idempotency_key)s) AS r
"""
)

TRANSITION_SESSION: Final = (
    "SELECT"
    + SESSION_COLUMNS
    + """
  FROM autodoctor.transition_session(
           session_id => %(session_id)s::uuid,
           to_status => %(to_status)s::autodoctor.session_status) AS s
"""
)

CLAIM_ORPHANED_SESSION: Final = (
    "SELECT"
    + SESSION_COLUMNS
    + """
  FROM autodoctor.claim_orphaned_session(session_id => %(session_id)s::uuid) AS s
"""
)

EXPIRE_STALE_REQUESTS: Final = "SELECT autodoctor.expire_stale_requests() AS n"

CONVERT_ORPHANED_SESSIONS: Final = "SELECT autodoctor.convert_orphaned_sessions() AS n"

AUTO_ASSIGN_ORPHANED_SESSIONS: Final = """
SELECT autodoctor.auto_assign_orphaned_sessions(batch_size => %(batch_size)s::integer) AS n
"""

CANCEL_ORPHANED_SESSIONS: Final = """
SELECT autodoctor.cancel_orphaned_sessions(older_than => %(older_than)s::interval) AS n
"""

RUN_MAINTENANCE: Final = "SELECT autodoctor.run_maintenance() AS report"

CHECK_INVARIANTS: Final = "SELECT invariant, detail FROM autodoctor.check_invariants()"

INTAKE_COLUMNS: Final = """
    i.id, i.created_at, i.customer_id, i.vehicle_make, i.vehicle_model, i.vehicle_year,
    i.vin, i.concern,
    i.location::text AS location,
    i.idempotency_key
"""

GET_INTAKE: Final = (
    "SELECT"
    + INTAKE_COLUMNS
    + """
  FROM autodoctor.intakes AS i
 WHERE i.id = %(intake_id)s::uuid
"""
)

MY_SESSIONS: Final = """
SELECT id, my_role, status::text AS status, session_type::text AS session_type, plan_code,
       request_id, intake_id, mechanic_id, customer_user_id, created_at, started_at,
       ended_at, duration_minutes
  FROM autodoctor.my_sessions
 LIMIT %(limit)s
"""

ORPHANED_SESSIONS: Final = """
SELECT id, created_at, status::text AS status, session_type::text AS session_type,
       plan_code, customer_user_id, intake_id, pending_request_id,
       pending_request_expires_at, age
  FROM autodoctor.orphaned_sessions
 LIMIT %(limit)s
"""

CLAIM_NOTIFICATIONS: Final = """
SELECT o.id, o.created_at, o.kind, o.mechanic_id, o.recipient, o.request_id, o.session_id,
       o.status, o.attempts, o.next_attempt_at, o.last_error, o.sent_at
  FROM autodoctor.claim_notifications(batch_size => %(batch_size)s::integer) AS o
"""

COMPLETE_NOTIFICATION: Final = """
SELECT o.id, o.created_at, o.kind, o.mechanic_id, o.recipient, o.request_id, o.session_id,
       o.status, o.attempts, o.next_attempt_at, o.last_error, o.sent_at
  FROM autodoctor.complete_notification(
           notification_id => %(notification_id)s::bigint,
           error => %(error)s,
           max_attempts => %(max_attempts)s::integer) AS o
"""

STATUS_COUNTS: Final = """
SELECT (SELECT count(*) FROM autodoctor.session_requests r
         WHERE r.status = 'pending' AND r.expires_at > now()) AS pending_requests,
       (SELECT count(*) FROM autodoctor.sessions s WHERE s.status = 'waiting') AS waiting_sessions,
       (SELECT count(*) FROM autodoctor.sessions s WHERE s.status = 'live') AS live_sessions,
       (SELECT count(*) FROM autodoctor.sessions s
         WHERE s.mechanic_id IS NULL AND s.status IN ('pending', 'live')) AS orphaned_sessions,
       (SELECT count(*) FROM autodoctor.session_requests r
         WHERE (r.status = 'expired' AND r.expired_at >= date_trunc('day', now()))
            OR (r.status = 'pending' AND r.expires_at <= now()
                AND r.expires_at >= date_trunc('day', now()))) AS expired_today,
       (SELECT now() - min(r.created_at) FROM autodoctor.session_requests r
         WHERE r.status = 'pending' AND r.expires_at > now()) AS oldest_pending_age,
       (SELECT count(*) FROM autodoctor.notification_outbox o WHERE o.status = 'pending')
           AS outbox_pending,
       (SELECT count(*) FROM autodoctor.mechanics m WHERE m.active AND m.online) AS mechanics_online
"""

PENDING_REQUESTS: Final = (
    "SELECT"
    + REQUEST_COLUMNS
    + """
  FROM autodoctor.session_requests AS r
 WHERE r.status = 'pending' AND r.expires_at > now()
 ORDER BY r.created_at
 LIMIT %(limit)s
"""
)

#: A read-only transaction (dashboards; on a hot standby every transaction is one).
READ_ONLY: Final = "SET TRANSACTION READ ONLY"

#: The primary's standbys and how far behind each is.
REPLICATION: Final = """
SELECT application_name AS name, state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag_bytes,
       replay_lag
  FROM pg_stat_replication
 ORDER BY application_name
"""

RELAY_EVENTS: Final = "SELECT autodoctor.relay_events() AS n"  # default batch of 1000

#: The new-request e-mail fan-out of up to batch_size requests; how many it fanned out.
FAN_OUT_NEW_REQUESTS: Final = "SELECT autodoctor.fan_out_new_requests(batch_size => %(batch_size)s)"

#: The current event mark (``event_watermark()``), as a Python int.
EVENT_WATERMARK: Final = "SELECT autodoctor.event_watermark()::text::bigint"

#: Whether the current role may run relay_events() (the service role may).
MAY_RELAY: Final = (
    "SELECT has_function_privilege('autodoctor.relay_events(integer)', 'EXECUTE') AS may"
)

SET_NOTIFY_MODE: Final = "SELECT autodoctor.set_notify_mode(mode => %(mode)s) AS mode"


#: The driver's own transaction control (its pooled connections are in autocommit mode, so
#: that BEGIN and the caller's claims can be pipelined with the first query).
BEGIN: Final = "BEGIN"
BEGIN_READ_ONLY: Final = "BEGIN READ ONLY"
COMMIT: Final = "COMMIT"
ROLLBACK: Final = "ROLLBACK"

-- Deploy autodoctor:session_events to pg
-- requires: sessions

BEGIN;

CREATE TABLE autodoctor.session_events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    at timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction's id: a listener's cursor is a commit-order-safe watermark
    -- over it (ids are allocated in one order, transactions commit in another).
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event text NOT NULL CHECK (event IN (
        'new_request', 'request_accepted', 'request_cancelled', 'request_expired',
        'session_assigned', 'session_status_changed', 'orphan_converted', 'orphan_cancelled'
    )),
    request_id uuid,
    session_id uuid,
    actor_id uuid,
    from_status text,
    to_status text,
    session_type autodoctor.session_type,
    plan_code text,
    detail jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);

COMMENT ON TABLE autodoctor.session_events IS
    'Append-only log of every state change (who, what, from -> to). The source of truth '
    'for broadcasts and replay: a NOTIFY on channel autodoctor is only a hint to read it. '
    'Partitioned by month of at; run_maintenance() creates months ahead and drops those '
    'older than settings.event_retention.';

CREATE INDEX session_events_request_id_idx ON autodoctor.session_events (request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX session_events_session_id_idx ON autodoctor.session_events (session_id)
    WHERE session_id IS NOT NULL;
CREATE INDEX session_events_actor_id_idx ON autodoctor.session_events (actor_id)
    WHERE actor_id IS NOT NULL;
CREATE INDEX session_events_txid_idx ON autodoctor.session_events (txid, id);

ALTER TABLE autodoctor.session_events ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON autodoctor.session_events TO authenticated, service_role;

CREATE POLICY session_events_select_authenticated ON autodoctor.session_events
    FOR SELECT TO authenticated
    USING (
        actor_id = (SELECT auth.uid())
        OR EXISTS (SELECT 1 FROM autodoctor.session_requests r
                    WHERE r.id = session_events.request_id
                      AND (r.customer_id = (SELECT auth.uid()) OR r.mechanic_id = (SELECT auth.uid())))
        OR EXISTS (SELECT 1 FROM autodoctor.sessions s
                    WHERE s.id = session_events.session_id
                      AND (s.customer_user_id = (SELECT auth.uid()) OR s.mechanic_id = (SELECT auth.uid())))
    );
COMMENT ON POLICY session_events_select_authenticated ON autodoctor.session_events IS
    'A user reads the events of the requests and sessions they take part in.';

CREATE POLICY session_events_select_service ON autodoctor.session_events
    FOR SELECT TO service_role USING (true);
COMMENT ON POLICY session_events_select_service ON autodoctor.session_events IS
    'The service role reads the whole log (listeners, replay).';

-- _notify_event: broadcasts a logged event on channel autodoctor.
-- The payload carries ids and non-private fields only (any role may LISTEN); it is sent
-- in the event's own transaction, so it is delivered if and only if the event commits.
CREATE OR REPLACE FUNCTION autodoctor._notify_event()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('autodoctor', pg_catalog.json_build_object(
        'event_id', NEW.id,
        'event', NEW.event,
        'request_id', NEW.request_id,
        'session_id', NEW.session_id,
        'session_type', NEW.session_type,
        'plan_code', NEW.plan_code,
        'at', NEW.at
    )::text);
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION autodoctor._notify_event() IS
    'Private trigger: NOTIFY autodoctor with the ids-only payload of a new event.';
REVOKE ALL ON FUNCTION autodoctor._notify_event() FROM PUBLIC;

CREATE TRIGGER session_events_notify
    AFTER INSERT ON autodoctor.session_events
    FOR EACH ROW EXECUTE FUNCTION autodoctor._notify_event();

-- _forbid_event_change: keeps the log append-only, for the owner too.
CREATE OR REPLACE FUNCTION autodoctor._forbid_event_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = '42501',
        MESSAGE = 'session_events is append-only',
        DETAIL = 'append_only',
        HINT = 'Log a new event instead of changing or deleting one.';
END
$$;

COMMENT ON FUNCTION autodoctor._forbid_event_change() IS
    'Private trigger: refuses UPDATE, DELETE and TRUNCATE on session_events.';
REVOKE ALL ON FUNCTION autodoctor._forbid_event_change() FROM PUBLIC;

CREATE TRIGGER session_events_append_only
    BEFORE UPDATE OR DELETE ON autodoctor.session_events
    FOR EACH ROW EXECUTE FUNCTION autodoctor._forbid_event_change();

CREATE TRIGGER session_events_no_truncate
    BEFORE TRUNCATE ON autodoctor.session_events
    FOR EACH STATEMENT EXECUTE FUNCTION autodoctor._forbid_event_change();

-- _log_event: appends one event to the log (which broadcasts it).
-- Called by the package's functions in the transaction of the change it records.
CREATE OR REPLACE FUNCTION autodoctor._log_event(
    event text,
    request_id uuid,
    session_id uuid,
    actor_id uuid,
    from_status text,
    to_status text,
    session_type autodoctor.session_type,
    plan_code text,
    detail jsonb DEFAULT '{}'::jsonb
)
RETURNS bigint
LANGUAGE sql
VOLATILE
SET search_path = ''
AS $$
    INSERT INTO autodoctor.session_events
        (event, request_id, session_id, actor_id, from_status, to_status,
         session_type, plan_code, detail)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, '{}'::jsonb))
    RETURNING id;
$$;

COMMENT ON FUNCTION autodoctor._log_event(text, uuid, uuid, uuid, text, text, autodoctor.session_type, text, jsonb) IS
    'Private: appends an event to session_events; its trigger broadcasts it.';
REVOKE ALL ON FUNCTION autodoctor._log_event(text, uuid, uuid, uuid, text, text, autodoctor.session_type, text, jsonb) FROM PUBLIC;

COMMIT;

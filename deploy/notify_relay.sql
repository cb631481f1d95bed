-- Deploy autodoctor:notify_relay to pg
-- requires: session_events
-- requires: settings

BEGIN;

-- PostgreSQL serialises the commits of every transaction that issued NOTIFY on one
-- cluster-wide lock held through the commit's WAL flush, so notifying transactions lose
-- group commit. In 'relay' mode the hot transaction only writes its session_events row;
-- relay_events() announces new events with one NOTIFY per batch. Listeners lose nothing
-- either way: they read the log from their cursor, and NOTIFY is only a wake-up.
CREATE TABLE autodoctor.relay_state (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_event_id bigint NOT NULL DEFAULT 0,
    relayed_at timestamptz
);

COMMENT ON TABLE autodoctor.relay_state IS
    'Relay mode: the highest event id already announced by relay_events().';

INSERT INTO autodoctor.relay_state DEFAULT VALUES;

ALTER TABLE autodoctor.relay_state ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON autodoctor.relay_state TO service_role;

CREATE POLICY relay_state_select_service ON autodoctor.relay_state
    FOR SELECT TO service_role USING (true);
COMMENT ON POLICY relay_state_select_service ON autodoctor.relay_state IS
    'The service role reads the relay position.';

-- relay_events: announces the events logged since the last relay, with one NOTIFY.
-- Payload {"event": "events_available", "event_id": <highest id>, "count": n}: a hint to
-- read the log. One relay at a time (its row is taken SKIP LOCKED); returns how many
-- events it announced (0 when none, or when another relay is running).
CREATE FUNCTION autodoctor.relay_events()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_last bigint;
    v_max bigint;
    v_count integer;
BEGIN
    SELECT s.last_event_id INTO v_last FROM autodoctor.relay_state s WHERE s.id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    SELECT max(e.id), count(*) INTO v_max, v_count
      FROM autodoctor.session_events e
     WHERE e.id > v_last;
    IF v_max IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM pg_catalog.pg_notify('autodoctor', pg_catalog.json_build_object(
        'event', 'events_available', 'event_id', v_max, 'count', v_count, 'at', now())::text);
    UPDATE autodoctor.relay_state s SET last_event_id = v_max, relayed_at = now() WHERE s.id;
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION autodoctor.relay_events() IS
    'Service role (worker, listeners): in relay mode, NOTIFY autodoctor once for every event '
    'logged since the last relay; returns how many it announced.';
REVOKE ALL ON FUNCTION autodoctor.relay_events() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.relay_events() TO service_role;

-- set_notify_mode: switches how broadcasts leave ('transaction' or 'relay').
-- Enables or disables the per-event NOTIFY trigger in the same transaction as the setting,
-- so the two never disagree; the relay starts from the current end of the log.
CREATE FUNCTION autodoctor.set_notify_mode(
    mode text
)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF mode IS NULL OR mode NOT IN ('transaction', 'relay') THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'notify mode must be transaction or relay',
            DETAIL = 'invalid_notify_mode';
    END IF;
    UPDATE autodoctor.settings s SET notify_mode = set_notify_mode.mode, updated_at = now() WHERE s.id;
    IF mode = 'relay' THEN
        UPDATE autodoctor.relay_state s
           SET last_event_id = coalesce((SELECT max(e.id) FROM autodoctor.session_events e), 0)
         WHERE s.id;
        ALTER TABLE autodoctor.session_events DISABLE TRIGGER session_events_notify;
    ELSE
        ALTER TABLE autodoctor.session_events ENABLE TRIGGER session_events_notify;
    END IF;
    RETURN mode;
END
$$;

COMMENT ON FUNCTION autodoctor.set_notify_mode(text) IS
    'Service role: broadcast in each event''s transaction (transaction, the default) or in '
    'batches by relay_events() (relay). Errors: 22023 invalid_notify_mode.';
REVOKE ALL ON FUNCTION autodoctor.set_notify_mode(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.set_notify_mode(text) TO service_role;

COMMIT;

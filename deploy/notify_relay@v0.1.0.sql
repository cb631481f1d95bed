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

-- relay_events: announces the events logged since the last relay, in one transaction.
-- One NOTIFY per event with the same ids-only payload as transaction mode (so listeners
-- cannot tell the modes apart, but for latency), at most batch_size events per call: the
-- cluster-wide NOTIFY commit lock is taken once per batch instead of once per writer.
-- One relay at a time (its row is taken SKIP LOCKED); returns how many events it announced
-- (0 when none, or when another relay is running).
CREATE OR REPLACE FUNCTION autodoctor.relay_events(
    batch_size integer DEFAULT 1000
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_last bigint;
    v_max bigint;
    v_count bigint;
BEGIN
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'batch_size must be between 1 and 100000',
            DETAIL = 'invalid_batch_size';
    END IF;
    SELECT s.last_event_id INTO v_last FROM autodoctor.relay_state s WHERE s.id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    -- Events are announced by id; one committed late below the mark is not announced, which
    -- is harmless: NOTIFY is only a hint, listeners read the log (and poll it) by cursor.
    WITH batch AS (
        SELECT e.id, e.event, e.request_id, e.session_id, e.session_type, e.plan_code, e.at
          FROM autodoctor.session_events e
         WHERE e.id > v_last
         ORDER BY e.id
         LIMIT batch_size
    ), sent AS (
        SELECT b.id, pg_catalog.pg_notify('autodoctor', pg_catalog.json_build_object(
                   'event_id', b.id, 'event', b.event, 'request_id', b.request_id,
                   'session_id', b.session_id, 'session_type', b.session_type,
                   'plan_code', b.plan_code, 'at', b.at)::text)
          FROM batch b
         ORDER BY b.id
    )
    SELECT max(sent.id), count(*) INTO v_max, v_count FROM sent;
    IF v_max IS NULL THEN
        RETURN 0;
    END IF;
    UPDATE autodoctor.relay_state s SET last_event_id = v_max, relayed_at = now() WHERE s.id;
    RETURN v_count::integer;
END
$$;

COMMENT ON FUNCTION autodoctor.relay_events(integer) IS
    'Service role (worker, listeners): in relay mode, NOTIFY autodoctor for each event logged '
    'since the last relay (same payload as transaction mode), up to batch_size, in one '
    'transaction; returns how many it announced. Errors: 22023 invalid_batch_size.';
REVOKE ALL ON FUNCTION autodoctor.relay_events(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.relay_events(integer) TO service_role;

-- set_notify_mode: switches how broadcasts leave ('transaction' or 'relay').
-- Enables or disables the per-event NOTIFY trigger in the same transaction as the setting,
-- so the two never disagree; the relay starts from the current end of the log.
CREATE OR REPLACE FUNCTION autodoctor.set_notify_mode(
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

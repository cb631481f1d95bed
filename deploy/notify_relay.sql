-- Deploy autodoctor:notify_relay to pg
-- requires: notify_relay@v0.1.0
-- requires: relay_watermark
-- requires: event_watermark

BEGIN;

-- relay_events: in relay mode, announces every event whose transaction has ended, in the
-- order the event followers read the log: (transaction id, event id). An event is final
-- once its transaction id is below autodoctor.event_watermark(), the oldest transaction of
-- this database still running: then it is committed or never will be, and nothing can be
-- logged before it any more (a transaction of another database does not hold it back).
-- So an event whose transaction commits after a later one was relayed
-- is still announced, when it is final. One NOTIFY per event with the same ids-only payload
-- as transaction mode, at most batch_size per call, in one transaction: the cluster-wide
-- NOTIFY commit lock is taken once per batch instead of once per writer. In transaction
-- mode it announces nothing and returns 0, so listeners and the worker call it whatever the
-- mode, and pick up a switch at run time. One relay at a time (its row is taken SKIP
-- LOCKED); returns how many events it announced.
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
    v_final xid8;
    v_last_txid xid8;
    v_last_id bigint;
    v_new_txid xid8;
    v_new_id bigint;
    v_count integer;
BEGIN
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'batch_size must be between 1 and 100000',
            DETAIL = 'invalid_batch_size';
    END IF;
    -- Taken before this transaction gets a transaction id of its own (the row lock below
    -- assigns one), so that it does not hold back the events of later transactions.
    v_final := autodoctor.event_watermark();
    IF (SELECT s.notify_mode FROM autodoctor.settings s WHERE s.id) IS DISTINCT FROM 'relay' THEN
        RETURN 0;
    END IF;
    -- Nothing final to announce: return before locking the relay's row, so that an idle
    -- relay polling every few milliseconds only reads (no transaction id, no WAL, no
    -- commit flush). Another relay may move the mark meanwhile; the locked read below is
    -- the one that counts.
    IF NOT EXISTS (
        SELECT 1
          FROM autodoctor.relay_state s
          JOIN autodoctor.session_events e
            ON (e.txid, e.id) > (s.last_txid, s.last_event_id) AND e.txid < v_final
         WHERE s.id) THEN
        RETURN 0;
    END IF;
    SELECT s.last_txid, s.last_event_id INTO v_last_txid, v_last_id
      FROM autodoctor.relay_state s WHERE s.id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    WITH batch AS (
        SELECT e.txid, e.id, e.event, e.request_id, e.session_id, e.session_type, e.plan_code, e.at
          FROM autodoctor.session_events e
         WHERE (e.txid, e.id) > (v_last_txid, v_last_id)
           AND e.txid < v_final
         ORDER BY e.txid, e.id
         LIMIT batch_size
    ), sent AS MATERIALIZED (
        SELECT b.txid, b.id, pg_catalog.pg_notify('autodoctor', pg_catalog.json_build_object(
                   'event_id', b.id, 'event', b.event, 'request_id', b.request_id,
                   'session_id', b.session_id, 'session_type', b.session_type,
                   'plan_code', b.plan_code, 'at', b.at)::text)
          FROM batch b
         ORDER BY b.txid, b.id
    )
    SELECT (SELECT s.txid FROM sent s ORDER BY s.txid DESC, s.id DESC LIMIT 1),
           (SELECT s.id FROM sent s ORDER BY s.txid DESC, s.id DESC LIMIT 1),
           (SELECT count(*) FROM sent)::integer
      INTO v_new_txid, v_new_id, v_count;
    IF v_count = 0 THEN
        RETURN 0;
    END IF;
    UPDATE autodoctor.relay_state s
       SET last_txid = v_new_txid, last_event_id = v_new_id, relayed_at = now()
     WHERE s.id;
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION autodoctor.relay_events(integer) IS
    'Service role (worker, listeners): in relay mode, NOTIFY autodoctor for each final event '
    'not yet announced, in (txid, id) order (same payload as transaction mode), up to '
    'batch_size, in one transaction; 0 in transaction mode. Errors: 22023 invalid_batch_size.';
REVOKE ALL ON FUNCTION autodoctor.relay_events(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.relay_events(integer) TO service_role;

-- set_notify_mode: switches how broadcasts leave ('transaction' or 'relay').
-- Enables or disables the per-event NOTIFY trigger in the same transaction as the setting,
-- so the two never disagree. The trigger change waits for the transactions writing events
-- now; the relay then starts at the oldest transaction still running, so an event logged
-- without its own NOTIFY is never skipped (one logged around the switch may be announced
-- twice: a NOTIFY is a hint, listeners read the log by cursor).
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
    IF mode = 'relay' THEN
        ALTER TABLE autodoctor.session_events DISABLE TRIGGER session_events_notify;
        IF (SELECT s.notify_mode FROM autodoctor.settings s WHERE s.id) <> 'relay' THEN
            UPDATE autodoctor.relay_state s
               SET last_txid = pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()),
                   last_event_id = 0
             WHERE s.id;
        END IF;
    ELSE
        ALTER TABLE autodoctor.session_events ENABLE TRIGGER session_events_notify;
    END IF;
    UPDATE autodoctor.settings s SET notify_mode = set_notify_mode.mode, updated_at = now() WHERE s.id;
    RETURN mode;
END
$$;

COMMENT ON FUNCTION autodoctor.set_notify_mode(text) IS
    'Service role: broadcast in each event''s transaction (transaction, the default) or in '
    'batches by relay_events() (relay). Errors: 22023 invalid_notify_mode.';
REVOKE ALL ON FUNCTION autodoctor.set_notify_mode(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.set_notify_mode(text) TO service_role;

COMMIT;

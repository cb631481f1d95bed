-- Revert autodoctor:event_position from pg

BEGIN;

-- event_watermark and relay_events as change event_watermark and notify_relay made them:
-- the mark waits for every running transaction of this database that holds an id, and
-- the relay reads it in a statement of its own (safe with that mark).
CREATE OR REPLACE FUNCTION autodoctor.event_watermark()
RETURNS xid8
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
    RETURN (
    WITH s AS (
        SELECT pg_catalog.pg_current_snapshot() AS snap
    ), running AS (
        SELECT x.xid
          FROM s, pg_catalog.pg_snapshot_xip(s.snap) AS x (xid)
    ), elsewhere AS (
        SELECT a.backend_xid AS xid
          FROM pg_catalog.pg_stat_activity a
         WHERE a.backend_xid IS NOT NULL
           AND a.datid IS NOT NULL
           AND a.datid <> (SELECT d.oid FROM pg_catalog.pg_database d
                            WHERE d.datname = pg_catalog.current_database())
        UNION ALL
        SELECT p.transaction
          FROM pg_catalog.pg_prepared_xacts p
         WHERE p.database <> pg_catalog.current_database()
    )
    SELECT CASE
             -- The snapshot lists every running transaction: its xmin is the oldest of them.
             WHEN pg_catalog.pg_snapshot_xmin(s.snap)
                  = COALESCE((SELECT min(r.xid) FROM running r), pg_catalog.pg_snapshot_xmax(s.snap))
             THEN COALESCE((SELECT min(r.xid) FROM running r
                             WHERE NOT EXISTS (SELECT 1 FROM elsewhere e WHERE e.xid = r.xid::xid)),
                           pg_catalog.pg_snapshot_xmax(s.snap))
             ELSE pg_catalog.pg_snapshot_xmin(s.snap)
           END
      FROM s
    );
END
$$;

COMMENT ON FUNCTION autodoctor.event_watermark() IS
    'Any follower (authenticated, service role): the transaction id below which '
    'session_events is final (every writer has ended); transactions of other databases do '
    'not hold it back. Followers read '
    '(txid, id) > cursor AND txid < event_watermark().';
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
-- Events logged from now on carry their transaction's own id again. The positions already
-- logged are never below their transaction's id, and the mark above waits for every
-- running transaction, so the log stays in order for followers.
ALTER TABLE autodoctor.session_events
    ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
COMMENT ON COLUMN autodoctor.session_events.txid IS NULL;
DROP FUNCTION autodoctor._event_position();

COMMIT;

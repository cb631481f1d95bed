-- Deploy autodoctor:event_position to pg
-- requires: event_watermark
-- requires: notify_relay

BEGIN;

-- An event's position: session_events.txid is where the event sits in the log, not only
-- the id of the transaction that wrote it. It is that id, or the newest transaction id
-- that had ended when the event was logged if that is later: a transaction may hold its id
-- long before it logs an event (a data migration, a batch job, a caller that wrote first
-- and calls the package later). It is taken while the insert holds its ROW EXCLUSIVE lock
-- on session_events, which the transaction keeps until it ends, and it is what lets
-- event_watermark() (below) pass a running transaction that has logged nothing: whatever
-- that transaction logs later is positioned no lower than the last position below any mark
-- computed before, and at that position after every event already read there, by id. Once the writer
-- commits, the newest ended id is at least its position, so the mark passes the event
-- without waiting for any other transaction. The positions of one transaction's events
-- never decrease, and (txid, id) orders the log as before.
--
-- READ COMMITTED (PostgREST's and the driver's level): the newest ended id is the xmax of
-- a fresh snapshot, minus one (a volatile PL/pgSQL expression takes a fresh snapshot).
-- REPEATABLE READ and SERIALIZABLE keep the transaction's first snapshot, so there it is
-- found with pg_xact_status(), which refuses an id not yet assigned: a doubling then
-- halving search from the transaction's own id finds the next id to be assigned (two
-- probes per doubling of the ids assigned since), then the newest id below it that is no
-- longer running (one probe per transaction still running above the own id).
CREATE FUNCTION autodoctor._event_position()
RETURNS xid8
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
    v_own bigint := pg_catalog.pg_current_xact_id()::text::bigint;
    v_past bigint;
    v_future bigint;
    v_probe bigint;
    v_step bigint := 1::bigint;
    v_assigned boolean;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') = 'read committed' THEN
        RETURN GREATEST(
            v_own,
            pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint - 1
        )::text::xid8;
    END IF;
    -- The own id is assigned: the next one lies above it.
    v_past := v_own;
    LOOP
        v_probe := v_past + v_step;
        BEGIN
            PERFORM pg_catalog.pg_xact_status(v_probe::text::xid8);
            v_assigned := true;
        EXCEPTION WHEN invalid_parameter_value THEN  -- "transaction ID ... is in the future"
            v_assigned := false;
        END;
        EXIT WHEN NOT v_assigned;
        v_past := v_probe;
        v_step := v_step * 2;
    END LOOP;
    v_future := v_probe;
    WHILE v_future - v_past > 1 LOOP
        v_probe := v_past + (v_future - v_past) / 2;
        BEGIN
            PERFORM pg_catalog.pg_xact_status(v_probe::text::xid8);
            v_past := v_probe;
        EXCEPTION WHEN invalid_parameter_value THEN
            v_future := v_probe;
        END;
    END LOOP;
    -- The newest id below the next one that has ended (committed or rolled back).
    v_probe := v_future - 1;
    WHILE v_probe > v_own
          AND pg_catalog.pg_xact_status(v_probe::text::xid8) = 'in progress' LOOP
        v_probe := v_probe - 1;
    END LOOP;
    RETURN v_probe::text::xid8;
END
$$;

COMMENT ON FUNCTION autodoctor._event_position() IS
    'Private (the default of session_events.txid): the event''s position in the log, the '
    'writing transaction''s id or the newest ended one if later, taken while the insert '
    'holds its lock on session_events.';
REVOKE ALL ON FUNCTION autodoctor._event_position() FROM PUBLIC;

ALTER TABLE autodoctor.session_events
    ALTER COLUMN txid SET DEFAULT autodoctor._event_position();

COMMENT ON COLUMN autodoctor.session_events.txid IS
    'The event''s position for followers'' (txid, id) cursors: the writing transaction''s '
    'id, or the newest transaction id that had ended when the event was logged if later.';

-- event_watermark(): the mark that splits the log for a reader. Read below it in the same
-- statement ((txid, id) > cursor AND txid < (SELECT event_watermark())), the rows are final
-- for that statement's snapshot: every event it does not show, committed later, sorts
-- after all of them. Followers (the driver's db.events) and the relay read so, and move
-- their cursor to the last row.
--
-- It is the oldest transaction running in the caller's snapshot among those that have
-- logged an event, i.e. hold a ROW EXCLUSIVE lock on session_events (or one of its
-- partitions); with none, the snapshot's xmax. A running transaction that has logged
-- nothing is passed, whatever else it writes and in whichever database: an event it logs
-- later takes its lock first, and its position after that (see _event_position). So a
-- data migration, a batch job or an idle transaction, in this database or another, does
-- not hold back delivery (pg_snapshot_xmin(pg_current_snapshot()), used before, waited for
-- all of them).
--
-- Why a passed transaction's later events sort after what the reader gets. The snapshot S
-- comes first (the calling statement's; a STABLE function reads with it throughout). Then
-- pg_locks is read, once: a transaction of S that holds its own transaction id lock and no
-- lock on the log is a candidate. Then, in a later statement, a candidate is passed only if
-- it is still in progress (pg_xact_status) and is not a prepared transaction. Committing
-- and rolling back leave the proc array before any lock is released (and the log's locks,
-- usually fast-path ones, go before the transaction id lock), and PREPARE registers the
-- prepared transaction before it moves the locks one partition at a time: without these
-- two checks a transaction caught mid-commit or mid-PREPARE, its events logged, looked as
-- if it had logged nothing, and the reader moved past its events (reproduced with a
-- debugger, and 4 times in 350,000 commits under load with several pollers). A candidate
-- still in progress after the pg_locks read was running, not ending, when pg_locks was
-- read, after S, with no lock on the log: any event it logs takes its lock later and its
-- position then, no lower than the newest transaction id ended before S, which is the
-- mark's highest value minus one; at that position its id (identity values are taken in
-- time order) is above those of the events S shows there. A transaction that ends before
-- the pg_locks read is kept (conservatively: it only lowers the mark until the next read).
-- Prepared transactions of another database are passed, those of this one kept.
--
-- pg_locks, pg_prepared_xacts and pg_xact_status are open to every role, so it runs as its
-- caller (SECURITY INVOKER) and is granted to both roles that follow the log: the service
-- (the relay, a back end's follower) and signed-in users (a user's own follower, as the
-- example service's event stream). Where the snapshot does not list its running
-- transactions (a hot standby lists them as subtransactions; or the caller's own
-- transaction holds the oldest id), it is pg_snapshot_xmin.
--
-- PL/pgSQL: its plans are kept for the session (the relay and every follower call it
-- every poll).
CREATE OR REPLACE FUNCTION autodoctor.event_watermark()
RETURNS xid8
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
    v_snap pg_catalog.pg_snapshot := pg_catalog.pg_current_snapshot();
    v_oldest xid8;
    v_candidates xid8[];
    v_passed xid8[];
BEGIN
    SELECT min(x.xid) INTO v_oldest FROM pg_catalog.pg_snapshot_xip(v_snap) AS x (xid);
    -- The snapshot lists every running transaction only if its xmin is the oldest of them.
    IF pg_catalog.pg_snapshot_xmin(v_snap)
       <> COALESCE(v_oldest, pg_catalog.pg_snapshot_xmax(v_snap)) THEN
        RETURN pg_catalog.pg_snapshot_xmin(v_snap);
    END IF;
    IF v_oldest IS NULL THEN
        RETURN pg_catalog.pg_snapshot_xmax(v_snap);
    END IF;
    -- 1. One read of pg_locks: running transactions of the snapshot whose backend holds no
    -- lock on the log.
    WITH locks AS MATERIALIZED (
        SELECT l.locktype, l.database, l.relation, l.transactionid, l.pid, l.mode, l.granted
          FROM pg_catalog.pg_locks l
         WHERE l.locktype IN ('relation', 'transactionid')
    ), logging AS (
        SELECT l.pid
          FROM locks l
         WHERE l.locktype = 'relation'
           AND l.mode = 'RowExclusiveLock'
           AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d
                              WHERE d.datname = pg_catalog.current_database())
           AND l.relation IN (SELECT t.relid
                                FROM pg_catalog.pg_partition_tree(
                                         'autodoctor.session_events'::pg_catalog.regclass) t)
    )
    SELECT pg_catalog.array_agg(r.xid) INTO v_candidates
      FROM pg_catalog.pg_snapshot_xip(v_snap) AS r (xid)
     WHERE r.xid::xid IN (SELECT l.transactionid
                            FROM locks l
                           WHERE l.locktype = 'transactionid'
                             AND l.mode = 'ExclusiveLock'
                             AND l.granted
                             AND l.pid IS NOT NULL
                             AND NOT EXISTS (SELECT 1 FROM logging g WHERE g.pid = l.pid));
    -- 2. After that read: a candidate is passed only if still running and not being
    -- prepared; a prepared transaction of another database is passed too.
    WITH prepared AS MATERIALIZED (
        SELECT p.transaction, p.database = pg_catalog.current_database() AS here
          FROM pg_catalog.pg_prepared_xacts p
    )
    SELECT pg_catalog.array_agg(x.xid) INTO v_passed
      FROM (SELECT c.xid
              FROM pg_catalog.unnest(v_candidates) AS c (xid)
             WHERE pg_catalog.pg_xact_status(c.xid) = 'in progress'
               AND c.xid::xid NOT IN (SELECT p.transaction FROM prepared p)
            UNION ALL
            SELECT r.xid
              FROM pg_catalog.pg_snapshot_xip(v_snap) AS r (xid)
              JOIN prepared p ON p.transaction = r.xid::xid AND NOT p.here) AS x;
    RETURN COALESCE(
        (SELECT min(r.xid)
           FROM pg_catalog.pg_snapshot_xip(v_snap) AS r (xid)
          WHERE r.xid <> ALL (COALESCE(v_passed, '{}'::xid8[]))),
        pg_catalog.pg_snapshot_xmax(v_snap));
END
$$;

COMMENT ON FUNCTION autodoctor.event_watermark() IS
    'Any follower (authenticated, service role): the mark that splits session_events for '
    'a reader; running transactions that have logged no event do not hold it back. Read '
    'below it in the same statement: (txid, id) > cursor AND txid < (SELECT '
    'event_watermark()).';
REVOKE ALL ON FUNCTION autodoctor.event_watermark() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.event_watermark() TO authenticated, service_role;

-- relay_events: in relay mode, announces every event whose transaction has ended, in the
-- order the event followers read the log: (position, event id). It reads the events below
-- autodoctor.event_watermark() (the oldest running transaction that has logged an event;
-- one that has logged nothing does not hold it back) in the statement that takes the mark,
-- so any event that statement does not see sorts after what it announces. So an event whose transaction commits after a later one was relayed
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
    IF (SELECT s.notify_mode FROM autodoctor.settings s WHERE s.id) IS DISTINCT FROM 'relay' THEN
        RETURN 0;
    END IF;
    -- Nothing final to announce: return before locking the relay's row, so that an idle
    -- relay polling every few milliseconds only reads (no transaction id, no WAL, no
    -- commit flush). Another relay may move the mark meanwhile; the locked read below is
    -- the one that counts. The mark is read in the statement that reads the events, as
    -- every follower must (event_watermark: an event logged late by a transaction the
    -- mark passed may sit at the mark's last position, after the events this snapshot
    -- shows there; a later snapshot could show some of those late events and not others).
    IF NOT EXISTS (
        SELECT 1
          FROM autodoctor.relay_state s
          JOIN autodoctor.session_events e
            ON (e.txid, e.id) > (s.last_txid, s.last_event_id)
           AND e.txid < (SELECT autodoctor.event_watermark())
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
           AND e.txid < (SELECT autodoctor.event_watermark())
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

COMMIT;

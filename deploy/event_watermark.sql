-- Deploy autodoctor:event_watermark to pg
-- requires: session_events

BEGIN;

-- event_watermark(): the transaction id below which the event log is final. Every event
-- whose txid is below it was written by a transaction that has ended (committed or rolled
-- back), so no event can appear below it any more: followers (the driver's db.events) and
-- the relay read (txid, id) > cursor AND txid < event_watermark().
--
-- It is the oldest transaction id still running in the caller's snapshot, leaving out the
-- transactions known to belong to another database of the cluster: transaction ids are
-- cluster-wide, but a transaction connected to another database can never write this
-- database's session_events. So a data migration or a batch job in another database no
-- longer holds back delivery here (pg_snapshot_xmin(pg_current_snapshot()), used before,
-- is cluster-wide). A transaction of this database that holds a transaction id still holds
-- delivery back until it ends: it may yet log an event under that id.
--
-- Safe against every race: the snapshot comes first (the statement's), the other
-- databases' transactions are read after it. A transaction that ends in between is no
-- longer listed, so it is kept (conservatively: it only lowers the mark until the next
-- read); a listed one belonged to another database when it was read, and a transaction
-- never changes database. Backends without a database (background workers) and prepared
-- transactions of this database are kept. backend_xid and the database of every backend
-- are visible to any role in pg_stat_activity, and pg_prepared_xacts to any role, so it
-- runs as its caller (SECURITY INVOKER) and is granted to both roles that follow the log:
-- the service (the relay, a back end's follower) and signed-in users (a user's own
-- follower, as the example service's event stream). Where the snapshot does not list its
-- running transactions (a hot standby lists them as subtransactions), it is
-- pg_snapshot_xmin, as before.
--
-- PL/pgSQL around one query: its plan is kept for the session (a SQL function that sets
-- search_path is planned on every call, and the relay and every follower call this one
-- every poll).
CREATE FUNCTION autodoctor.event_watermark()
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
REVOKE ALL ON FUNCTION autodoctor.event_watermark() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.event_watermark() TO authenticated, service_role;

COMMIT;

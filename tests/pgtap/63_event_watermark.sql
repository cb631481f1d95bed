-- event_watermark: the position below which session_events is final, for every
-- follower: the service role (the relay, a back end's follower of the whole log) and
-- signed-in users (their own follower). It runs as its caller. The part that needs other sessions (a
-- running transaction that has logged nothing is passed, one that has logged an event is not) is tested with
-- real connections in tests/python/contract/test_events.py; here: the catalog, the grants,
-- and that the value lies within the caller's snapshot and never above a running
-- transaction that has logged an event.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(12);
\ir helpers.psql

SELECT has_function('autodoctor', 'event_watermark', ARRAY[]::name[], 'event_watermark() should exist');
SELECT function_returns('autodoctor', 'event_watermark', ARRAY[]::name[], 'xid8',
    'event_watermark should return a transaction id (xid8)');
SELECT isnt_definer('autodoctor', 'event_watermark', ARRAY[]::name[],
    'event_watermark should run as its caller (it reads only what every role may read)');
SELECT volatility_is('autodoctor', 'event_watermark', ARRAY[]::name[], 'stable',
    'event_watermark should be STABLE: one value per statement');
SELECT function_privs_are('autodoctor', 'event_watermark', ARRAY[]::name[], 'authenticated',
    ARRAY['EXECUTE'], 'authenticated should execute event_watermark');
SELECT function_privs_are('autodoctor', 'event_watermark', ARRAY[]::name[], 'service_role',
    ARRAY['EXECUTE'], 'service_role should execute event_watermark');
SELECT function_privs_are('autodoctor', 'event_watermark', ARRAY[]::name[], 'anon',
    ARRAY[]::name[], 'anon should not execute event_watermark');

SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.login('alice');
SELECT ok(autodoctor.event_watermark() BETWEEN pg_snapshot_xmin(pg_current_snapshot())
                                           AND pg_snapshot_xmax(pg_current_snapshot()),
    'as a user it should lie between the snapshot''s xmin and xmax');
SELECT is(pg_temp.anon_error_of($$SELECT autodoctor.event_watermark()$$), '42501:',
    'anon should be refused (no USAGE on the schema)');
SELECT pg_temp.logout();

SELECT pg_temp.login_service();
SELECT ok(autodoctor.event_watermark() BETWEEN pg_snapshot_xmin(pg_current_snapshot())
                                           AND pg_snapshot_xmax(pg_current_snapshot()),
    'as the service role it should lie between the snapshot''s xmin and xmax');
SELECT pg_temp.logout();

-- This transaction holds a transaction id now (new_user wrote): to itself it is not
-- running, so the mark may pass it; what it must never pass is an xid that its snapshot
-- lists as running and whose backend has logged an event (holds ROW EXCLUSIVE on the log).
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_snapshot_xip(pg_current_snapshot()) AS x (xid)
                       JOIN pg_locks t ON t.locktype = 'transactionid' AND t.transactionid = x.xid::xid
                       JOIN pg_locks r ON r.pid = t.pid AND r.locktype = 'relation'
                                      AND r.relation = 'autodoctor.session_events'::regclass
                                      AND r.mode = 'RowExclusiveLock'
                      WHERE x.xid < autodoctor.event_watermark()),
    'it should never lie above a running transaction that has logged an event');
SELECT ok(autodoctor.event_watermark() <= pg_snapshot_xmax(pg_current_snapshot()),
    'it should never lie above the snapshot''s xmax');

SELECT * FROM finish();
ROLLBACK;

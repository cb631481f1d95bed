-- run_maintenance: every repair in one call (service_role, pg_cron): expire stale requests,
-- cancel orphans older than a day, auto-assign in batches, convert what remains, keep the
-- history partitions. Afterwards no pending or live session lacks both a mechanic and a
-- pending request. The result's counts, the rows written, who may call it.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(19);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'run_maintenance', ARRAY[]::text[], 'run_maintenance() should exist');
SELECT is_definer('autodoctor', 'run_maintenance', ARRAY[]::text[],
    'run_maintenance should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'run_maintenance', ARRAY[]::text[], 'jsonb',
    'run_maintenance should return jsonb');
SELECT function_privs_are('autodoctor', 'run_maintenance', ARRAY[]::text[], 'service_role',
    ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on run_maintenance');
SELECT function_privs_are('autodoctor', 'run_maintenance', ARRAY[]::text[], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute run_maintenance');

-- ---------------------------------------------------------------------------------------
-- Fixtures: one request past its expiry, three orphans (one stale, one a mechanic online
-- can take, one nobody online qualifies for)
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_mechanic('nia', ARRAY['chat']::autodoctor.session_type[]);
SELECT pg_temp.login('nia');
SELECT autodoctor.set_mechanic_availability(true) IS NOT NULL AS online \g /dev/null
SELECT pg_temp.logout();
SELECT pg_temp.new_request('r_due', 'alice', 'video');
UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second' WHERE id = pg_temp.id('r_due');
SELECT pg_temp.new_orphan('s_stale', 'alice', 'video', 'pending', interval '3 days');
SELECT pg_temp.new_orphan('s_chat', 'alice', 'chat', 'pending', interval '1 hour');
SELECT pg_temp.new_orphan('s_diag', 'alice', 'diagnostic', 'live', interval '1 hour');

-- ---------------------------------------------------------------------------------------
-- Who may call: a refusal writes nothing
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint_all() AS footprint;
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.run_maintenance()$$,
    '42501', NULL,
    'a signed-in user should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.run_maintenance()$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT is(pg_temp.footprint_all(), (SELECT footprint FROM pg_temp.before),
    'a refused call should repair nothing');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login_service();
SELECT isnt_empty($$SELECT * FROM autodoctor.check_invariants()$$,
    'fixture: the orphans break orphan_without_pending_request before the run');
CREATE TEMP TABLE run1 AS SELECT autodoctor.run_maintenance() AS r;
SELECT pg_temp.logout();
SELECT is(
    (SELECT r - 'duration_ms' - 'partitions' FROM pg_temp.run1),
    '{"expired_requests": 1, "cancelled_orphans": 1, "auto_assigned": 1, "converted_orphans": 1}'::jsonb,
    'the result should count each step: one expired, one cancelled, one assigned, one converted');
SELECT ok(
    (SELECT (r ->> 'duration_ms')::numeric >= 0 FROM pg_temp.run1),
    'the result should carry duration_ms');
SELECT results_eq(
    $$SELECT l.label, s.status::text, s.mechanic_id, s.cancel_reason
        FROM autodoctor.sessions s JOIN pg_temp.ids l ON l.id = s.id ORDER BY l.label$$,
    $$VALUES ('s_chat', 'waiting', pg_temp.id('nia'), NULL::text),
             ('s_diag', 'live', NULL::uuid, NULL),
             ('s_stale', 'cancelled', NULL, 'orphaned')$$,
    'the stale orphan should be cancelled, the chat one assigned, the diagnostic one left live');
SELECT results_eq(
    $$SELECT status::text FROM autodoctor.session_requests WHERE id = pg_temp.id('r_due')$$,
    $$VALUES ('expired')$$,
    'the request past its expiry should be expired');
SELECT results_eq(
    $$SELECT status::text, session_type::text FROM autodoctor.session_requests WHERE session_id = pg_temp.id('s_diag')$$,
    $$VALUES ('pending', 'diagnostic')$$,
    'the orphan nobody could take should have a pending request (converted)');
SELECT results_eq(
    $$SELECT kind, session_id FROM autodoctor.notification_outbox WHERE mechanic_id = pg_temp.id('nia')$$,
    $$VALUES ('session_assigned', pg_temp.id('s_chat'))$$,
    'the assigned mechanic should be e-mailed (and not about a diagnostic request she cannot take)');

CREATE TEMP TABLE after_first AS SELECT pg_temp.footprint_all() AS footprint;
SELECT pg_temp.login_service();
SELECT is_empty($$SELECT * FROM autodoctor.check_invariants()$$,
    'after the run every invariant should hold');
SELECT is(
    autodoctor.run_maintenance() - 'duration_ms' - 'partitions',
    '{"expired_requests": 0, "cancelled_orphans": 0, "auto_assigned": 0, "converted_orphans": 0}'::jsonb,
    'a second run should find nothing to repair');
SELECT pg_temp.logout();
SELECT is(pg_temp.footprint_all(), (SELECT footprint FROM pg_temp.after_first),
    'a second run should write nothing');

SELECT * FROM finish();
ROLLBACK;

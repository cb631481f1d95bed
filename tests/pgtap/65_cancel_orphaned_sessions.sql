-- cancel_orphaned_sessions: repair option 1 (service_role). Orphans (no mechanic, pending
-- or live) created more than older_than ago are cancelled with cancel_reason 'orphaned',
-- never deleted, together with their converted request. The rows and events written,
-- invalid_interval, who may call it, nothing written by a refused call.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(24);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'cancel_orphaned_sessions', ARRAY['interval'],
    'cancel_orphaned_sessions(interval) should exist');
SELECT is_definer('autodoctor', 'cancel_orphaned_sessions', ARRAY['interval'],
    'cancel_orphaned_sessions should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'cancel_orphaned_sessions', ARRAY['interval'], 'integer',
    'cancel_orphaned_sessions should return the number cancelled');
SELECT function_privs_are('autodoctor', 'cancel_orphaned_sessions', ARRAY['interval'], 'service_role',
    ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on cancel_orphaned_sessions');
SELECT function_privs_are('autodoctor', 'cancel_orphaned_sessions', ARRAY['interval'], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute cancel_orphaned_sessions');

-- ---------------------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_mechanic('pat', p_capacity => 5);
SELECT pg_temp.new_orphan('s_old', 'alice', 'video', 'pending', interval '2 days');
SELECT pg_temp.new_orphan('s_old_live', 'alice', 'chat', 'live', interval '3 days');
SELECT pg_temp.new_orphan('s_old_conv', 'alice', 'chat', 'pending', interval '2 days');
SELECT pg_temp.new_orphan('s_recent', 'alice', 'video', 'live', interval '2 hours');
SELECT pg_temp.new_orphan('s_closed', 'alice', 'chat', 'pending', interval '5 days');
UPDATE autodoctor.sessions SET status = 'cancelled' WHERE id = pg_temp.id('s_closed');
-- Old, but it has a mechanic: not an orphan.
SELECT pg_temp.new_orphan('s_assigned', 'alice', 'chat', 'pending', interval '5 days');
UPDATE autodoctor.sessions SET mechanic_id = pg_temp.id('pat'), status = 'waiting'
 WHERE id = pg_temp.id('s_assigned');
SELECT pg_temp.remember('r_conv', gen_random_uuid());
INSERT INTO autodoctor.session_requests (id, customer_id, session_type, plan_code, session_id)
VALUES (pg_temp.id('r_conv'), pg_temp.id('alice'), 'chat', 'free', pg_temp.id('s_old_conv'));

-- ---------------------------------------------------------------------------------------
-- Refusals write nothing
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint() AS footprint;
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_orphaned_sessions('-1 day')$$,
    '22023', 'invalid_interval',
    'a negative older_than should be refused');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_orphaned_sessions(NULL)$$,
    '22023', 'invalid_interval',
    'a NULL older_than should be refused');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_orphaned_sessions('a while')$$,
    '22007', NULL,
    'an older_than that is no interval should be refused before the function runs');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_orphaned_sessions()$$,
    '42501', NULL,
    'a signed-in user should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.cancel_orphaned_sessions()$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.before),
    'a refused call should cancel nothing');

-- ---------------------------------------------------------------------------------------
-- Success: the default cancels orphans older than a day
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login_service();
SELECT is(autodoctor.cancel_orphaned_sessions(), 3,
    'the default (1 day) should cancel the three orphans older than a day');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT l.label, s.status::text, s.cancel_reason, s.ended_at
        FROM autodoctor.sessions s JOIN pg_temp.ids l ON l.id = s.id
       WHERE l.label LIKE 's\_%' ORDER BY l.label$$,
    $$VALUES ('s_assigned', 'waiting', NULL::text, NULL::timestamptz),
             ('s_closed', 'cancelled', NULL, NULL),
             ('s_old', 'cancelled', 'orphaned', now()),
             ('s_old_conv', 'cancelled', 'orphaned', now()),
             ('s_old_live', 'cancelled', 'orphaned', now()),
             ('s_recent', 'live', NULL, NULL)$$,
    'old orphans should be cancelled (reason orphaned, ended_at set); recent, closed and assigned ones untouched');
SELECT is(
    (SELECT count(*)::int FROM autodoctor.sessions WHERE customer_user_id = pg_temp.id('alice')),
    6,
    'cancelled orphans should be kept, never deleted');
SELECT results_eq(
    $$SELECT status::text, cancelled_at FROM autodoctor.session_requests WHERE id = pg_temp.id('r_conv')$$,
    $$VALUES ('cancelled', now())$$,
    'an orphan''s converted request should be cancelled with it');
SELECT results_eq(
    $$SELECT event, request_id, from_status, to_status, detail FROM autodoctor.session_events
       WHERE session_id = pg_temp.id('s_old_conv') ORDER BY id$$,
    $$VALUES ('request_cancelled', pg_temp.id('r_conv'), 'pending', 'cancelled', '{"reason": "orphaned"}'::jsonb),
             ('orphan_cancelled', pg_temp.id('r_conv'), 'pending', 'cancelled',
              '{"reason": "orphaned", "older_than": "1 day"}'::jsonb)$$,
    'the converted request''s and the orphan''s cancellations should both be logged');
SELECT results_eq(
    $$SELECT session_id, from_status, actor_id FROM autodoctor.session_events
       WHERE event = 'orphan_cancelled' AND session_id IN (pg_temp.id('s_old'), pg_temp.id('s_old_live'))
       ORDER BY from_status$$,
    $$VALUES (pg_temp.id('s_old_live'), 'live', NULL::uuid), (pg_temp.id('s_old'), 'pending', NULL::uuid)$$,
    'each cancelled orphan should be logged once, from its status, with no actor');

-- A shorter age takes the recent one; zero then finds nothing left.
SELECT pg_temp.login_service();
SELECT is(autodoctor.cancel_orphaned_sessions(older_than => '1 hour'), 1,
    'older_than 1 hour should cancel the orphan two hours old');
SELECT is(autodoctor.cancel_orphaned_sessions('0'), 0,
    'no orphan should be left to cancel');
SELECT is_empty($$SELECT * FROM autodoctor.check_invariants()$$,
    'after the repair every invariant should hold');
SELECT pg_temp.logout();

SELECT * FROM finish();
ROLLBACK;

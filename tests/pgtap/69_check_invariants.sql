-- check_invariants: every violated invariant of the data model, one row each, empty when
-- healthy (service_role; read-only). Each invariant is broken here once, behind the
-- functions' backs as an old code path or an administrator would, and must be reported
-- with the ids involved; the call itself writes nothing.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(15);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'check_invariants', ARRAY[]::text[], 'check_invariants() should exist');
SELECT is_definer('autodoctor', 'check_invariants', ARRAY[]::text[],
    'check_invariants should be SECURITY DEFINER');
SELECT volatility_is('autodoctor', 'check_invariants', ARRAY[]::text[], 'stable',
    'check_invariants should be STABLE (read-only)');
SELECT function_privs_are('autodoctor', 'check_invariants', ARRAY[]::text[], 'service_role',
    ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on check_invariants');
SELECT function_privs_are('autodoctor', 'check_invariants', ARRAY[]::text[], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute check_invariants');

-- ---------------------------------------------------------------------------------------
-- Healthy: a lifecycle through the functions breaks nothing
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_mechanic('mia', p_capacity => 5);
SELECT pg_temp.new_request('r_ok', 'alice');
SELECT pg_temp.new_request('r_open', 'alice');
SELECT pg_temp.new_request('r_gone', 'alice');
SELECT pg_temp.new_request('r_mine', 'alice');
SELECT pg_temp.login('mia');
SELECT pg_temp.remember('s_ok', (autodoctor.accept_session_request(pg_temp.id('r_ok'))).id);
SELECT autodoctor.transition_session(pg_temp.id('s_ok'), 'live') IS NOT NULL AS live \g /dev/null
SELECT pg_temp.login('alice');
SELECT autodoctor.cancel_session_request(pg_temp.id('r_gone')) IS NOT NULL AS cancelled \g /dev/null
SELECT pg_temp.login_service();
SELECT is_empty($$SELECT * FROM autodoctor.check_invariants()$$,
    'a healthy database should have no violated invariant');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- Each invariant broken once (as the superuser)
-- ---------------------------------------------------------------------------------------
-- An active orphan with no pending request.
SELECT pg_temp.new_orphan('s_orphan', 'alice', 'video', 'live');
-- A request marked accepted with no session and no event.
UPDATE autodoctor.session_requests SET status = 'accepted', mechanic_id = pg_temp.id('mia'), accepted_at = now()
 WHERE id = pg_temp.id('r_open');
-- A waiting session with no mechanic (inserted: the state machine trigger guards updates).
SELECT pg_temp.remember('s_nomech', gen_random_uuid());
INSERT INTO autodoctor.sessions (id, customer_user_id, plan, type, status)
VALUES (pg_temp.id('s_nomech'), pg_temp.id('alice'), 'free', 'chat', 'waiting');
-- A session pointing at a request that is still pending (which does not point back).
SELECT pg_temp.remember('s_wrong', gen_random_uuid());
INSERT INTO autodoctor.sessions (id, customer_user_id, mechanic_id, plan, type, status, request_id)
VALUES (pg_temp.id('s_wrong'), pg_temp.id('alice'), pg_temp.id('mia'), 'free', 'chat', 'completed',
        pg_temp.id('r_mine'));
-- A pending request for a session that has its mechanic.
SELECT pg_temp.remember('r_stray', gen_random_uuid());
INSERT INTO autodoctor.session_requests (id, customer_id, session_type, plan_code, session_id)
VALUES (pg_temp.id('r_stray'), pg_temp.id('alice'), 'chat', 'free', pg_temp.id('s_ok'));
-- A logged status change the state machine forbids.
INSERT INTO autodoctor.session_events (event, session_id, from_status, to_status, session_type, plan_code)
VALUES ('session_status_changed', pg_temp.id('s_ok'), 'completed', 'live', 'chat', 'free');
-- A wrong load counter: mia has one live session.
UPDATE autodoctor.mechanics SET active_sessions = 3 WHERE user_id = pg_temp.id('mia');

CREATE TEMP TABLE before AS SELECT pg_temp.footprint_all() AS footprint;
SELECT pg_temp.login_service();
CREATE TEMP TABLE found AS SELECT * FROM autodoctor.check_invariants();
SELECT pg_temp.logout();

SELECT set_eq(
    $$SELECT invariant FROM pg_temp.found$$,
    ARRAY['orphan_without_pending_request', 'accepted_request_without_session', 'request_change_without_event',
          'scheduled_or_waiting_without_mechanic', 'session_of_unaccepted_request', 'request_session_mismatch',
          'pending_request_for_assigned_session', 'event_breaks_state_machine', 'mechanic_load_mismatch'],
    'every broken invariant, and nothing else, should be reported');
SELECT results_eq(
    $$SELECT invariant, detail FROM pg_temp.found
       WHERE invariant IN ('orphan_without_pending_request', 'scheduled_or_waiting_without_mechanic',
                           'accepted_request_without_session', 'request_change_without_event')
       ORDER BY invariant$$,
    $$VALUES ('accepted_request_without_session', jsonb_build_object('request_id', pg_temp.id('r_open'))),
             ('orphan_without_pending_request', jsonb_build_object('session_id', pg_temp.id('s_orphan'), 'status', 'live')),
             ('request_change_without_event', jsonb_build_object('request_id', pg_temp.id('r_open'), 'status', 'accepted')),
             ('scheduled_or_waiting_without_mechanic', jsonb_build_object('session_id', pg_temp.id('s_nomech'), 'status', 'waiting'))$$,
    'orphans, unassigned waiting sessions and unlogged request changes should be reported with their ids');
SELECT results_eq(
    $$SELECT invariant, detail FROM pg_temp.found
       WHERE invariant IN ('session_of_unaccepted_request', 'request_session_mismatch',
                           'pending_request_for_assigned_session')
       ORDER BY invariant$$,
    $$VALUES ('pending_request_for_assigned_session',
              jsonb_build_object('request_id', pg_temp.id('r_stray'), 'session_id', pg_temp.id('s_ok'))),
             ('request_session_mismatch', jsonb_build_object('request_id', pg_temp.id('r_mine'), 'session_id', NULL)),
             ('session_of_unaccepted_request',
              jsonb_build_object('session_id', pg_temp.id('s_wrong'), 'request_id', pg_temp.id('r_mine'),
                                 'request_status', 'pending'))$$,
    'requests and sessions that do not match should be reported with both ids');
SELECT results_eq(
    $$SELECT detail ->> 'from', detail ->> 'to' FROM pg_temp.found WHERE invariant = 'event_breaks_state_machine'$$,
    $$VALUES ('completed', 'live')$$,
    'an event breaking the state machine should be reported with its move');
SELECT results_eq(
    $$SELECT detail FROM pg_temp.found WHERE invariant = 'mechanic_load_mismatch'$$,
    $$VALUES (jsonb_build_object('mechanic_id', pg_temp.id('mia'), 'counted', 3, 'actual', 1))$$,
    'a wrong load counter should be reported with the counted and actual numbers');
SELECT is(pg_temp.footprint_all(), (SELECT footprint FROM pg_temp.before),
    'checking should write nothing');

-- ---------------------------------------------------------------------------------------
-- Who may call
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('mia');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT * FROM autodoctor.check_invariants()$$,
    '42501', NULL,
    'a signed-in user should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT * FROM autodoctor.check_invariants()$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');

SELECT * FROM finish();
ROLLBACK;

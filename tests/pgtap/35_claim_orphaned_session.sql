-- claim_orphaned_session: a mechanic takes a legacy orphaned session (no mechanic, pending
-- or live) directly; a pending one becomes waiting, a live one stays live, and a converted
-- orphan's pending request is accepted with it. Success paths with the rows and events
-- written, every SQLSTATE and reason (and HINT), who may call it, nothing written on
-- failure. Races (claim against claim, claim against accept) are in tests/python.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(53);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'claim_orphaned_session', ARRAY['uuid'],
    'claim_orphaned_session(uuid) should exist');
SELECT is_definer('autodoctor', 'claim_orphaned_session', ARRAY['uuid'],
    'claim_orphaned_session should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'claim_orphaned_session', ARRAY['uuid'], 'autodoctor.sessions',
    'claim_orphaned_session should return a sessions row');
SELECT function_privs_are('autodoctor', 'claim_orphaned_session', ARRAY['uuid'], 'authenticated',
    ARRAY['EXECUTE'], 'authenticated should be granted EXECUTE on claim_orphaned_session');
SELECT function_privs_are('autodoctor', 'claim_orphaned_session', ARRAY['uuid'], 'service_role',
    ARRAY[]::name[], 'service_role should not execute claim_orphaned_session');
SELECT function_privs_are('autodoctor', 'claim_orphaned_session', ARRAY['uuid'], 'anon',
    ARRAY[]::name[], 'anon should not execute claim_orphaned_session');

-- ---------------------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('mia');                                       -- every type, capacity 1
SELECT pg_temp.new_mechanic('pat', p_capacity => 5);
SELECT pg_temp.new_mechanic('max', ARRAY['chat']::autodoctor.session_type[]);
SELECT pg_temp.new_mechanic('nora', p_latitude => 48.8566, p_longitude => 2.3522, p_radius_km => 10);
SELECT pg_temp.new_mechanic('ivan');
UPDATE autodoctor.mechanics SET active = false WHERE user_id = pg_temp.id('ivan');
SELECT pg_temp.new_mechanic('cam');                                       -- also a customer

SELECT pg_temp.new_orphan('s_pend', 'alice', 'chat', 'pending');
SELECT pg_temp.new_orphan('s_live', 'alice', 'video', 'live');
SELECT pg_temp.new_orphan('s_conv', 'bob', 'chat', 'pending');
SELECT pg_temp.new_orphan('s_other', 'bob', 'chat', 'pending');
SELECT pg_temp.new_orphan('s_diag', 'alice', 'diagnostic', 'pending');
SELECT pg_temp.new_orphan('s_paris', 'alice', 'chat', 'pending', p_latitude => 48.8600, p_longitude => 2.3400);
SELECT pg_temp.new_orphan('s_lyon', 'bob', 'chat', 'pending', p_latitude => 45.7640, p_longitude => 4.8357);
SELECT pg_temp.new_orphan('s_cam', 'cam', 'chat', 'pending');
SELECT pg_temp.new_orphan('s_closed', 'bob', 'chat', 'pending');
UPDATE autodoctor.sessions SET status = 'cancelled' WHERE id = pg_temp.id('s_closed');
SELECT pg_temp.new_orphan('s_late', 'bob', 'chat', 'pending');

-- Converted orphans (as convert_orphaned_sessions leaves them): one open, one run out.
SELECT pg_temp.remember('r_conv', gen_random_uuid());
SELECT pg_temp.remember('r_late', gen_random_uuid());
INSERT INTO autodoctor.session_requests (id, customer_id, session_type, plan_code, session_id, expires_at)
VALUES (pg_temp.id('r_conv'), pg_temp.id('bob'), 'chat', 'free', pg_temp.id('s_conv'), now() + interval '1 day'),
       (pg_temp.id('r_late'), pg_temp.id('bob'), 'chat', 'free', pg_temp.id('s_late'), now() - interval '1 second');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('mia');
SELECT results_eq(
    $$SELECT id, status::text, mechanic_id, customer_user_id, request_id
        FROM autodoctor.claim_orphaned_session(session_id => pg_temp.id('s_pend'))$$,
    $$VALUES (pg_temp.id('s_pend'), 'waiting', pg_temp.id('mia'), pg_temp.id('alice'), NULL::uuid)$$,
    'a mechanic should claim a pending orphan: it becomes waiting, with them as mechanic');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT event, actor_id, request_id, from_status, to_status, detail
        FROM autodoctor.session_events WHERE session_id = pg_temp.id('s_pend')$$,
    $$VALUES ('session_assigned', pg_temp.id('mia'), NULL::uuid, 'pending', 'waiting',
              jsonb_build_object('via', 'claim', 'mechanic_id', pg_temp.id('mia')))$$,
    'the claim should log one session_assigned event (via claim, pending -> waiting)');
SELECT is(
    (SELECT active_sessions FROM autodoctor.mechanics WHERE user_id = pg_temp.id('mia')),
    1,
    'the claimed session should count against the mechanic''s capacity');

SELECT pg_temp.login('pat');
SELECT results_eq(
    $$SELECT status::text, mechanic_id FROM autodoctor.claim_orphaned_session(pg_temp.id('s_live'))$$,
    $$VALUES ('live', pg_temp.id('pat'))$$,
    'a claimed live orphan should stay live, with the mechanic');
SELECT results_eq(
    $$SELECT status::text, mechanic_id, request_id FROM autodoctor.claim_orphaned_session(pg_temp.id('s_conv'))$$,
    $$VALUES ('waiting', pg_temp.id('pat'), pg_temp.id('r_conv'))$$,
    'claiming a converted orphan should link its request');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT status::text, mechanic_id, session_id, accepted_at
        FROM autodoctor.session_requests WHERE id = pg_temp.id('r_conv')$$,
    $$VALUES ('accepted', pg_temp.id('pat'), pg_temp.id('s_conv'), now())$$,
    'the converted request should be accepted with the claim');
SELECT results_eq(
    $$SELECT event, request_id FROM autodoctor.session_events WHERE session_id = pg_temp.id('s_conv')$$,
    $$VALUES ('session_assigned', pg_temp.id('r_conv'))$$,
    'the claim of a converted orphan should be logged against its request');

SELECT pg_temp.login('nora');
SELECT is(
    (autodoctor.claim_orphaned_session(pg_temp.id('s_paris'))).mechanic_id,
    pg_temp.id('nora'),
    'a located mechanic should claim an orphan whose intake is inside the service radius');

-- Who reads the result.
SELECT pg_temp.login('alice');
SELECT results_eq(
    $$SELECT status::text, mechanic_id FROM autodoctor.my_sessions WHERE id = pg_temp.id('s_pend')$$,
    $$VALUES ('waiting', pg_temp.id('mia'))$$,
    'the customer should see the claimed session with its mechanic');
SELECT pg_temp.login('mia');
SELECT results_eq(
    $$SELECT my_role FROM autodoctor.my_sessions WHERE id = pg_temp.id('s_pend')$$,
    $$VALUES ('mechanic')$$,
    'the mechanic should see the claimed session as theirs');
SELECT pg_temp.login('max');
SELECT is_empty(
    $$SELECT id FROM autodoctor.sessions WHERE id = pg_temp.id('s_pend')$$,
    'another mechanic should not read the claimed session');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- Errors: every SQLSTATE and reason, with the documented HINTs
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint() AS footprint;

SELECT pg_temp.login_nobody();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_other'))$$,
    '42501', 'not_authenticated',
    'claim should refuse a caller without JWT claims');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_other'))$$,
    '42501', 'not_mechanic',
    'claim should refuse a customer who is not a mechanic');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_other'))$$),
    'Mechanics are registered by the service with register_mechanic.',
    'not_mechanic should carry its HINT');
SELECT pg_temp.login('ivan');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_other'))$$,
    '42501', 'not_mechanic',
    'claim should refuse an inactive mechanic');
SELECT pg_temp.login('pat');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(gen_random_uuid())$$,
    'PT404', 'session_not_found',
    'claim should answer PT404 for a session that does not exist');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(NULL)$$,
    'PT404', 'session_not_found',
    'claim should answer PT404 for a NULL session id');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session('not-a-uuid')$$,
    '22P02', NULL,
    'claim should refuse a malformed uuid with 22P02');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_pend'))$$,
    'PT409', 'session_not_claimable',
    'claim should refuse an orphan another mechanic already took');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_pend'))$$),
    'Another mechanic took it, or it was closed.',
    'session_not_claimable should carry its HINT');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_closed'))$$,
    'PT409', 'session_not_claimable',
    'claim should refuse an orphan that was closed');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_late'))$$,
    'PT409', 'request_expired',
    'claim should refuse an orphan whose converted request ran out, before maintenance ran');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_late'))$$),
    'Maintenance closes it (run_maintenance); the customer may ask again.',
    'request_expired should carry its HINT');
SELECT pg_temp.login('max');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_diag'))$$,
    '42501', 'not_qualified',
    'claim should refuse a mechanic whose expertise does not cover the session type');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_diag'))$$),
    'Only mechanics whose expertise covers the session type can accept it.',
    'not_qualified should carry the same HINT as in accept_session_request (the shared guard)');
SELECT pg_temp.login('nora');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_lyon'))$$,
    '42501', 'out_of_service_area',
    'claim should refuse an orphan whose intake lies outside the service radius');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_lyon'))$$),
    'Widen the service radius or update the location with set_mechanic_availability.',
    'out_of_service_area should carry the same HINT as in accept_session_request (the shared guard)');
SELECT pg_temp.login('cam');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_cam'))$$,
    '42501', 'own_request',
    'claim should refuse a mechanic claiming their own session');
-- mia holds one waiting session and may hold one.
SELECT pg_temp.login('mia');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_other'))$$,
    'PT409', 'capacity_reached',
    'claim should refuse a mechanic at max_concurrent_sessions');

-- Roles without EXECUTE.
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.claim_orphaned_session(pg_temp.id('s_other'))$$,
    '42501', NULL,
    'service_role should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.claim_orphaned_session(gen_random_uuid())$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');

SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.before),
    'a refused claim should write nothing: no assignment, no event');
SELECT results_eq(
    $$SELECT s.status::text, s.mechanic_id, r.status::text
        FROM autodoctor.sessions s JOIN autodoctor.session_requests r ON r.session_id = s.id
       WHERE s.id = pg_temp.id('s_late')$$,
    $$VALUES ('pending', NULL::uuid, 'pending')$$,
    'the orphan refused for its expired request should be untouched, its request still pending');

SELECT * FROM finish();
ROLLBACK;

-- accept_session_request: a mechanic accepts a pending request; exactly one wins, and the
-- session is born (or, for a converted legacy orphan, assigned) in the same transaction.
-- Success paths, every SQLSTATE and reason, nothing written on failure, capacity, and
-- who reads the result (RLS). Races with real connections are in tests/python.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(61);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'accept_session_request', ARRAY['uuid'],
    'accept_session_request(uuid) should exist');
SELECT is_definer('autodoctor', 'accept_session_request', ARRAY['uuid'],
    'accept_session_request should be SECURITY DEFINER');
SELECT function_privs_are('autodoctor', 'accept_session_request', ARRAY['uuid'], 'authenticated',
    ARRAY['EXECUTE'], 'authenticated should be granted EXECUTE on accept_session_request');
SELECT function_privs_are('autodoctor', 'accept_session_request', ARRAY['uuid'], 'service_role',
    ARRAY[]::name[], 'service_role should not execute accept_session_request');

-- ---------------------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
-- Claims to be a mechanic in the metadata users write themselves: must not count.
SELECT pg_temp.new_user('mallory', 'Mallory', '{"role": "mechanic", "is_mechanic": true}');
SELECT pg_temp.new_mechanic('mia');                                       -- every type, capacity 1
SELECT pg_temp.new_mechanic('pat');
SELECT pg_temp.new_mechanic('quinn', p_capacity => 5);
SELECT pg_temp.new_mechanic('max', ARRAY['chat']::autodoctor.session_type[]);
SELECT pg_temp.new_mechanic('nora', p_latitude => 48.8566, p_longitude => 2.3522, p_radius_km => 10);
SELECT pg_temp.new_mechanic('ivan');
UPDATE autodoctor.mechanics SET active = false WHERE user_id = pg_temp.id('ivan');
SELECT pg_temp.new_mechanic('cam');                                       -- also a customer

SELECT pg_temp.new_request('r_ok', 'alice', 'chat');
SELECT pg_temp.new_request('r_second', 'bob', 'chat');
SELECT pg_temp.new_request('r_cancelled', 'alice', 'video');
SELECT pg_temp.new_request('r_late', 'bob', 'chat');
SELECT pg_temp.new_request('r_expired', 'bob', 'chat');
SELECT pg_temp.new_request('r_diag', 'alice', 'diagnostic');
SELECT pg_temp.new_request('r_lyon', 'bob', 'chat');
SELECT pg_temp.new_request('r_paris', 'bob', 'chat');
SELECT pg_temp.new_request('r_cam', 'cam', 'chat');

SELECT pg_temp.login('alice');
SELECT autodoctor.cancel_session_request(pg_temp.id('r_cancelled')) IS NOT NULL AS cancelled \g /dev/null
SELECT pg_temp.logout();
UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second'
 WHERE id = pg_temp.id('r_late');
UPDATE autodoctor.session_requests SET status = 'expired', expired_at = now()
 WHERE id = pg_temp.id('r_expired');
UPDATE autodoctor.session_requests SET location = autodoctor._point(45.7640, 4.8357)   -- Lyon
 WHERE id = pg_temp.id('r_lyon');
UPDATE autodoctor.session_requests SET location = autodoctor._point(48.8600, 2.3400)   -- ~1 km away
 WHERE id = pg_temp.id('r_paris');

-- Legacy orphans converted into requests (as convert_orphaned_sessions does): a pending
-- one, a live one, and one that was closed after its conversion.
INSERT INTO autodoctor.sessions (id, customer_user_id, plan, type, status)
VALUES (gen_random_uuid(), pg_temp.id('alice'), 'free', 'chat', 'pending'),
       (gen_random_uuid(), pg_temp.id('alice'), 'free', 'video', 'live'),
       (gen_random_uuid(), pg_temp.id('bob'), 'free', 'chat', 'pending');
SELECT pg_temp.remember(label, id)
  FROM (SELECT s.id, CASE s.type WHEN 'video' THEN 's_live'
                      ELSE CASE WHEN s.customer_user_id = pg_temp.id('alice') THEN 's_orphan'
                                ELSE 's_closed' END END AS label
          FROM autodoctor.sessions s
         WHERE s.customer_user_id IN (pg_temp.id('alice'), pg_temp.id('bob'))) AS o;
INSERT INTO autodoctor.session_requests (id, customer_id, session_type, plan_code, session_id)
VALUES (gen_random_uuid(), pg_temp.id('alice'), 'chat', 'free', pg_temp.id('s_orphan')),
       (gen_random_uuid(), pg_temp.id('alice'), 'video', 'free', pg_temp.id('s_live')),
       (gen_random_uuid(), pg_temp.id('bob'), 'chat', 'free', pg_temp.id('s_closed'));
SELECT pg_temp.remember('r_' || substr(l.label, 3), r.id)
  FROM autodoctor.session_requests r
  JOIN pg_temp.ids l ON l.id = r.session_id AND l.label LIKE 's\_%';
UPDATE autodoctor.sessions SET status = 'cancelled' WHERE id = pg_temp.id('s_closed');

-- ---------------------------------------------------------------------------------------
-- Success: a new session, waiting, in the same transaction
-- ---------------------------------------------------------------------------------------
SELECT is(
    (SELECT online FROM autodoctor.mechanics WHERE user_id = pg_temp.id('mia')),
    false,
    'fixture: mia is offline (accepting does not need the online flag)');
SELECT pg_temp.login('mia');
SELECT lives_ok(
    $$SELECT pg_temp.remember('s_ok', (autodoctor.accept_session_request(request_id => pg_temp.id('r_ok'))).id)$$,
    'accept should succeed for an active, qualified mechanic on a pending request');
SELECT results_eq(
    $$SELECT status::text, mechanic_id, customer_user_id, request_id, plan, type::text
        FROM autodoctor.sessions WHERE id = pg_temp.id('s_ok')$$,
    $$VALUES ('waiting', pg_temp.id('mia'), pg_temp.id('alice'), pg_temp.id('r_ok'), 'free', 'chat')$$,
    'accept should create a waiting session for the mechanic and the customer, pointing at the request');
SELECT results_eq(
    $$SELECT status::text, mechanic_id, session_id, accepted_at
        FROM autodoctor.session_requests WHERE id = pg_temp.id('r_ok')$$,
    $$VALUES ('accepted', pg_temp.id('mia'), pg_temp.id('s_ok'), now())$$,
    'accept should mark the request accepted by the mechanic, pointing at its session');
SELECT pg_temp.logout();
SELECT is(
    (SELECT count(*)::int FROM autodoctor.sessions WHERE request_id = pg_temp.id('r_ok')),
    1,
    'an accepted request should have exactly one session');
SELECT results_eq(
    $$SELECT event, actor_id, session_id, from_status, to_status
        FROM autodoctor.session_events WHERE request_id = pg_temp.id('r_ok') AND event = 'request_accepted'$$,
    $$VALUES ('request_accepted', pg_temp.id('mia'), pg_temp.id('s_ok'), 'pending', 'accepted')$$,
    'accept should log one request_accepted event (mechanic, session, pending -> accepted)');

-- Who reads the result.
SELECT pg_temp.login('alice');
SELECT results_eq(
    $$SELECT id FROM autodoctor.sessions WHERE request_id = pg_temp.id('r_ok')$$,
    $$VALUES (pg_temp.id('s_ok'))$$,
    'the customer should read the session born from their request');
SELECT pg_temp.login('mia');
SELECT results_eq(
    $$SELECT r.id, s.id FROM autodoctor.session_requests r
        JOIN autodoctor.sessions s ON s.request_id = r.id WHERE r.id = pg_temp.id('r_ok')$$,
    $$VALUES (pg_temp.id('r_ok'), pg_temp.id('s_ok'))$$,
    'the mechanic should read the request they accepted and its session');
SELECT pg_temp.login('bob');
SELECT is_empty(
    $$SELECT id FROM autodoctor.sessions WHERE id = pg_temp.id('s_ok')$$,
    'another customer should not read the session');
SELECT pg_temp.login('pat');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE id = pg_temp.id('r_ok')$$,
    'another mechanic should no longer read an accepted request');
SELECT is_empty(
    $$SELECT id FROM autodoctor.sessions WHERE id = pg_temp.id('s_ok')$$,
    'another mechanic should not read the session');
SELECT pg_temp.logout();

-- A request within the mechanic's service radius.
SELECT pg_temp.login('nora');
SELECT lives_ok(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_paris'))$$,
    'accept should succeed for a request inside the mechanic''s service radius');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- Success: a converted legacy orphan is assigned, not duplicated
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('quinn');
SELECT is(
    (autodoctor.accept_session_request(pg_temp.id('r_orphan'))).id,
    pg_temp.id('s_orphan'),
    'accepting a converted orphan should return the customer''s existing session');
SELECT is(
    (autodoctor.accept_session_request(pg_temp.id('r_live'))).status::text,
    'live',
    'accepting a converted live orphan should leave it live');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT status::text, mechanic_id, request_id FROM autodoctor.sessions WHERE id = pg_temp.id('s_orphan')$$,
    $$VALUES ('waiting', pg_temp.id('quinn'), pg_temp.id('r_orphan'))$$,
    'a converted pending orphan should be assigned to the mechanic, waiting, with its request_id');
SELECT results_eq(
    $$SELECT status::text, session_id, mechanic_id FROM autodoctor.session_requests WHERE id = pg_temp.id('r_orphan')$$,
    $$VALUES ('accepted', pg_temp.id('s_orphan'), pg_temp.id('quinn'))$$,
    'the converted request should be accepted and still point at the orphan session');
SELECT is(
    (SELECT count(*)::int FROM autodoctor.sessions WHERE customer_user_id = pg_temp.id('alice')),
    3,
    'accepting converted orphans should create no second session (alice: r_ok, two orphans)');
SELECT results_eq(
    $$SELECT mechanic_id, request_id FROM autodoctor.sessions WHERE id = pg_temp.id('s_live')$$,
    $$VALUES (pg_temp.id('quinn'), pg_temp.id('r_live'))$$,
    'a converted live orphan should be assigned to the mechanic with its request_id');

-- ---------------------------------------------------------------------------------------
-- Errors: every SQLSTATE and reason
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint() AS footprint;

SELECT pg_temp.login_nobody();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_second'))$$,
    '42501', 'not_authenticated',
    'accept should refuse a caller without JWT claims');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_second'))$$,
    '42501', 'not_mechanic',
    'accept should refuse a customer who is not a mechanic');
SELECT pg_temp.login('mallory');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_second'))$$,
    '42501', 'not_mechanic',
    'accept should refuse a user whose metadata claims a mechanic role (only register_mechanic counts)');
SELECT pg_temp.login('ivan');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_second'))$$,
    '42501', 'not_mechanic',
    'accept should refuse an inactive mechanic');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.accept_session_request(pg_temp.id('r_second'))$$),
    'Mechanics are registered by the service with register_mechanic.',
    'not_mechanic should carry the shared guard''s HINT (as in claim and set_mechanic_availability)');
SELECT pg_temp.login('pat');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(gen_random_uuid())$$,
    'PT404', 'request_not_found',
    'accept should answer PT404 for a request that does not exist');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(NULL)$$,
    'PT404', 'request_not_found',
    'accept should answer PT404 for a NULL request id');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request('not-a-uuid')$$,
    '22P02', NULL,
    'accept should refuse a malformed uuid with 22P02');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_ok'))$$,
    'PT409', 'request_not_pending',
    'accept should refuse a request that another mechanic already accepted');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_cancelled'))$$,
    'PT409', 'request_not_pending',
    'accept should refuse a request its customer cancelled');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_late'))$$,
    'PT409', 'request_expired',
    'accept should refuse a pending request past its expires_at, before any expiry job ran');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_expired'))$$,
    'PT409', 'request_expired',
    'accept should refuse an expired request');
SELECT pg_temp.login('max');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_diag'))$$,
    '42501', 'not_qualified',
    'accept should refuse a mechanic whose expertise does not cover the session type');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.accept_session_request(pg_temp.id('r_diag'))$$),
    'Only mechanics whose expertise covers the session type can accept it.',
    'not_qualified should carry the shared guard''s HINT (as in claim_orphaned_session)');
SELECT pg_temp.login('nora');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_lyon'))$$,
    '42501', 'out_of_service_area',
    'accept should refuse a request outside the mechanic''s service radius');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.accept_session_request(pg_temp.id('r_lyon'))$$),
    'Widen the service radius or update the location with set_mechanic_availability.',
    'out_of_service_area should carry the shared guard''s HINT (as in claim_orphaned_session)');
SELECT pg_temp.login('cam');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_cam'))$$,
    '42501', 'own_request',
    'accept should refuse a mechanic accepting their own request');
SELECT pg_temp.login('pat');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_closed'))$$,
    'PT409', 'session_not_claimable',
    'accept should refuse a converted request whose session was closed meanwhile');
-- mia holds one waiting session and may hold one.
SELECT pg_temp.login('mia');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_second'))$$,
    'PT409', 'capacity_reached',
    'accept should refuse a mechanic at max_concurrent_sessions');
SELECT pg_temp.logout();

-- Nothing written by any refusal above.
SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.before),
    'a refused accept should write nothing: no accepted request, no session, no event');
SELECT results_eq(
    $$SELECT status::text, mechanic_id, session_id, accepted_at
        FROM autodoctor.session_requests WHERE id IN (pg_temp.id('r_second'), pg_temp.id('r_closed'))
       ORDER BY session_id NULLS FIRST$$,
    $$VALUES ('pending', NULL::uuid, NULL::uuid, NULL::timestamptz),
             ('pending', NULL::uuid, pg_temp.id('s_closed'), NULL::timestamptz)$$,
    'requests refused at capacity or as unclaimable should stay pending and untouched');
SELECT is_empty(
    $$SELECT user_id FROM autodoctor.mechanics WHERE user_id = pg_temp.id('mallory')$$,
    'user metadata should never create a mechanics row');

-- Capacity counts only scheduled, waiting and live sessions: completing one frees a slot.
UPDATE autodoctor.sessions SET status = 'live' WHERE id = pg_temp.id('s_ok');
UPDATE autodoctor.sessions SET status = 'completed' WHERE id = pg_temp.id('s_ok');
SELECT pg_temp.login('mia');
SELECT lives_ok(
    $$SELECT autodoctor.accept_session_request(pg_temp.id('r_second'))$$,
    'accept should succeed again once the mechanic''s session is completed');
SELECT pg_temp.logout();

SELECT * FROM finish();
ROLLBACK;

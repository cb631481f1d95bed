-- incoming_requests: the calling mechanic's dashboard of pending requests they may accept
-- (active, expertise covers the type, inside the service radius where both sides have a
-- location, unexpired, not their own), oldest first; security_invoker, so the caller's
-- RLS on session_requests applies too. Checked cell by cell, both ways.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(26);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------------------
SELECT has_view('autodoctor', 'incoming_requests', 'view incoming_requests should exist');
SELECT ok(
    (SELECT reloptions @> ARRAY['security_invoker=true'] FROM pg_catalog.pg_class
      WHERE oid = 'autodoctor.incoming_requests'::regclass),
    'incoming_requests should be security_invoker');
SELECT table_privs_are('autodoctor', 'incoming_requests', 'authenticated', ARRAY['SELECT'],
    'authenticated should have only SELECT on incoming_requests');

-- ---------------------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('mia');                                             -- every type, anywhere
SELECT pg_temp.new_mechanic('max', ARRAY['chat']::autodoctor.session_type[]);   -- chat only
SELECT pg_temp.new_mechanic('nora', p_latitude => 48.8566, p_longitude => 2.3522, p_radius_km => 10);
SELECT pg_temp.new_mechanic('ivan');
UPDATE autodoctor.mechanics SET active = false WHERE user_id = pg_temp.id('ivan');
SELECT pg_temp.new_mechanic('cam');                                             -- also a customer
SELECT pg_temp.new_mechanic('pat');

SELECT pg_temp.login('alice');
SELECT pg_temp.remember('r_chat', (autodoctor.create_session_request('chat', 'free', 'Rattle at 50 km/h')).id);
SELECT pg_temp.logout();
SELECT pg_temp.new_request('r_diag', 'bob', 'diagnostic');
SELECT pg_temp.new_request('r_paris', 'bob', 'chat');
SELECT pg_temp.new_request('r_lyon', 'alice', 'video');
SELECT pg_temp.new_request('r_late', 'alice', 'chat');
SELECT pg_temp.new_request('r_expired', 'bob', 'chat');
SELECT pg_temp.new_request('r_cancelled', 'alice', 'chat');
SELECT pg_temp.new_request('r_accepted', 'bob', 'chat');
SELECT pg_temp.new_request('r_cam', 'cam', 'chat');

UPDATE autodoctor.session_requests SET location = autodoctor._point(48.8600, 2.3400)   -- ~1 km from nora
 WHERE id = pg_temp.id('r_paris');
UPDATE autodoctor.session_requests SET location = autodoctor._point(45.7640, 4.8357)   -- Lyon, ~390 km
 WHERE id = pg_temp.id('r_lyon');
UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second'
 WHERE id = pg_temp.id('r_late');
UPDATE autodoctor.session_requests SET status = 'expired', expired_at = now()
 WHERE id = pg_temp.id('r_expired');
SELECT pg_temp.login('alice');
SELECT autodoctor.cancel_session_request(pg_temp.id('r_cancelled')) IS NOT NULL \g /dev/null
SELECT pg_temp.login('pat');
SELECT autodoctor.accept_session_request(pg_temp.id('r_accepted')) IS NOT NULL \g /dev/null
SELECT pg_temp.logout();
-- A stable age order: r_chat oldest, then r_diag, r_paris, r_lyon, r_cam.
UPDATE autodoctor.session_requests r SET created_at = now() - o.age
  FROM (VALUES ('r_chat', interval '50 minutes'), ('r_diag', interval '40 minutes'),
               ('r_paris', interval '30 minutes'), ('r_lyon', interval '20 minutes'),
               ('r_cam', interval '10 minutes')) AS o(label, age)
 WHERE r.id = pg_temp.id(o.label);

-- ---------------------------------------------------------------------------------------
-- Who sees what
-- ---------------------------------------------------------------------------------------
SELECT is(
    (SELECT online FROM autodoctor.mechanics WHERE user_id = pg_temp.id('mia')),
    false,
    'fixture: mia is offline (being online does not matter to incoming_requests)');

SELECT pg_temp.login('mia');
SELECT results_eq(
    $$SELECT id FROM autodoctor.incoming_requests$$,
    $$VALUES (pg_temp.id('r_chat')), (pg_temp.id('r_diag')), (pg_temp.id('r_paris')),
             (pg_temp.id('r_lyon')), (pg_temp.id('r_cam'))$$,
    'a mechanic should see every eligible pending request, oldest first');
SELECT results_eq(
    $$SELECT session_type::text, plan_code, customer_name, notes, expires_at, intake_id, distance_km
        FROM autodoctor.incoming_requests WHERE id = pg_temp.id('r_chat')$$,
    $$SELECT 'chat', 'free', 'Alice', 'Rattle at 50 km/h', r.expires_at, NULL::uuid, NULL::numeric
        FROM autodoctor.session_requests r WHERE r.id = pg_temp.id('r_chat')$$,
    'incoming_requests should show type, plan, customer name, notes, expiry; no distance without locations');
SELECT set_eq(
    $$SELECT id FROM autodoctor.session_requests$$,
    $$SELECT id FROM autodoctor.incoming_requests$$,
    'through RLS a mechanic should read exactly the requests of their incoming_requests');
SELECT is_empty(
    $$SELECT id FROM autodoctor.incoming_requests
       WHERE id IN (pg_temp.id('r_late'), pg_temp.id('r_expired'), pg_temp.id('r_cancelled'), pg_temp.id('r_accepted'))$$,
    'a mechanic should not see expired (by time or status), cancelled or accepted requests');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE id = pg_temp.id('r_late')$$,
    'RLS should hide a request past its expires_at from mechanics even before it is marked expired');

SELECT pg_temp.login('max');
SELECT set_eq(
    $$SELECT id FROM autodoctor.incoming_requests$$,
    $$VALUES (pg_temp.id('r_chat')), (pg_temp.id('r_paris')), (pg_temp.id('r_cam'))$$,
    'a chat-only mechanic should see only the chat requests');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE session_type <> 'chat'$$,
    'through RLS a chat-only mechanic should read no request of another type');

SELECT pg_temp.login('nora');
SELECT set_eq(
    $$SELECT id FROM autodoctor.incoming_requests$$,
    $$VALUES (pg_temp.id('r_chat')), (pg_temp.id('r_diag')), (pg_temp.id('r_paris')), (pg_temp.id('r_cam'))$$,
    'a located mechanic should see requests inside the radius or without a location, not the far one');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE id = pg_temp.id('r_lyon')$$,
    'through RLS a located mechanic should not read a request outside the radius');
SELECT ok(
    (SELECT distance_km BETWEEN 0.5 AND 2.0 FROM autodoctor.incoming_requests WHERE id = pg_temp.id('r_paris')),
    'incoming_requests should give the distance in km when both sides have a location');

SELECT pg_temp.login('cam');
SELECT set_eq(
    $$SELECT id FROM autodoctor.incoming_requests$$,
    $$VALUES (pg_temp.id('r_chat')), (pg_temp.id('r_diag')), (pg_temp.id('r_paris')), (pg_temp.id('r_lyon'))$$,
    'a mechanic should not see their own request among incoming requests');

SELECT pg_temp.login('ivan');
SELECT is_empty(
    $$SELECT id FROM autodoctor.incoming_requests$$,
    'an inactive mechanic should see no incoming request');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests$$,
    'through RLS an inactive mechanic should read no request');

SELECT pg_temp.login('pat');
SELECT is_empty(
    $$SELECT id FROM autodoctor.incoming_requests WHERE id = pg_temp.id('r_accepted')$$,
    'the accepting mechanic should no longer see the request as incoming');
SELECT results_eq(
    $$SELECT status::text FROM autodoctor.session_requests WHERE id = pg_temp.id('r_accepted')$$,
    $$VALUES ('accepted')$$,
    'the accepting mechanic should still read the request they accepted');

SELECT pg_temp.login('alice');
SELECT is_empty(
    $$SELECT id FROM autodoctor.incoming_requests$$,
    'a customer who is not a mechanic should see no incoming request');
SELECT set_eq(
    $$SELECT id FROM autodoctor.session_requests$$,
    $$SELECT id FROM pg_temp.ids WHERE label IN ('r_chat', 'r_lyon', 'r_late', 'r_cancelled')$$,
    'a customer should read their own requests, whatever their status, and no one else''s');

SELECT pg_temp.login('bob');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE customer_id = pg_temp.id('alice')$$,
    'a customer should not read another customer''s requests');

SELECT pg_temp.login_nobody();
SELECT is_empty(
    $$SELECT id FROM autodoctor.incoming_requests$$,
    'an authenticated role without claims should see no incoming request');
SELECT pg_temp.logout();

-- Expiry follows the clock, not a job: moving r_chat's expiry into the past hides it.
UPDATE autodoctor.session_requests SET expires_at = now() WHERE id = pg_temp.id('r_chat');
SELECT pg_temp.login('mia');
SELECT is_empty(
    $$SELECT id FROM autodoctor.incoming_requests WHERE id = pg_temp.id('r_chat')$$,
    'a request whose expires_at has come should leave incoming_requests at once');

SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT * FROM autodoctor.incoming_requests$$,
    '42501', NULL,
    'service_role should not read incoming_requests (it has no mechanic identity)');
SELECT pg_temp.logout();

SELECT * FROM finish();
ROLLBACK;

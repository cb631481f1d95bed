-- expire_stale_requests: service_role's sweep. Every pending request past its expires_at
-- becomes expired (expired_at set, request_expired logged); a converted orphan's session
-- is cancelled with its request (cancel_reason request_expired, orphan_cancelled logged).
-- The rows written, idempotence, who may call it, nothing written by a refused call.
-- The skip of a request being accepted at that moment needs two connections (tests/python).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(20);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'expire_stale_requests', ARRAY[]::text[],
    'expire_stale_requests() should exist');
SELECT is_definer('autodoctor', 'expire_stale_requests', ARRAY[]::text[],
    'expire_stale_requests should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'expire_stale_requests', ARRAY[]::text[], 'integer',
    'expire_stale_requests should return the number expired');
SELECT function_privs_are('autodoctor', 'expire_stale_requests', ARRAY[]::text[], 'service_role',
    ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on expire_stale_requests');
SELECT function_privs_are('autodoctor', 'expire_stale_requests', ARRAY[]::text[], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute expire_stale_requests');
SELECT function_privs_are('autodoctor', 'expire_stale_requests', ARRAY[]::text[], 'anon',
    ARRAY[]::name[], 'anon should not execute expire_stale_requests');

-- ---------------------------------------------------------------------------------------
-- Fixtures: two requests past their expiry, one still open, closed ones past it, and two
-- converted orphans (pending, live) whose requests ran out.
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('mia');
SELECT pg_temp.new_request('r_due', 'alice');
SELECT pg_temp.new_request('r_due2', 'bob', 'video');
SELECT pg_temp.new_request('r_open', 'alice');
SELECT pg_temp.new_request('r_accepted', 'bob');
SELECT pg_temp.new_request('r_cancelled', 'alice');
SELECT pg_temp.login('mia');
SELECT autodoctor.accept_session_request(pg_temp.id('r_accepted')) IS NOT NULL AS accepted \g /dev/null
SELECT pg_temp.login('alice');
SELECT autodoctor.cancel_session_request(pg_temp.id('r_cancelled')) IS NOT NULL AS cancelled \g /dev/null
SELECT pg_temp.logout();

SELECT pg_temp.new_orphan('s_orphan', 'alice', 'chat', 'pending');
SELECT pg_temp.new_orphan('s_live', 'bob', 'video', 'live');
SELECT pg_temp.remember('r_orphan', gen_random_uuid());
SELECT pg_temp.remember('r_live', gen_random_uuid());
INSERT INTO autodoctor.session_requests (id, customer_id, session_type, plan_code, session_id)
VALUES (pg_temp.id('r_orphan'), pg_temp.id('alice'), 'chat', 'free', pg_temp.id('s_orphan')),
       (pg_temp.id('r_live'), pg_temp.id('bob'), 'video', 'free', pg_temp.id('s_live'));

-- Time passes (simulated as the superuser): all but r_open are past their expires_at.
UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second'
 WHERE id IN (pg_temp.id('r_due'), pg_temp.id('r_due2'), pg_temp.id('r_accepted'),
              pg_temp.id('r_cancelled'), pg_temp.id('r_orphan'), pg_temp.id('r_live'));

-- ---------------------------------------------------------------------------------------
-- Who may call: nobody but service_role, and a refusal writes nothing
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint() AS footprint;
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.expire_stale_requests()$$,
    '42501', NULL,
    'a signed-in user should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.expire_stale_requests()$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.before),
    'a refused call should expire nothing');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login_service();
SELECT is(autodoctor.expire_stale_requests(), 4,
    'the sweep should expire the four pending requests past their expiry');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT l.label, r.status::text, r.expired_at
        FROM autodoctor.session_requests r JOIN pg_temp.ids l ON l.id = r.id ORDER BY l.label$$,
    $$VALUES ('r_accepted', 'accepted', NULL::timestamptz), ('r_cancelled', 'cancelled', NULL),
             ('r_due', 'expired', now()), ('r_due2', 'expired', now()), ('r_live', 'expired', now()),
             ('r_open', 'pending', NULL), ('r_orphan', 'expired', now())$$,
    'pending requests past expires_at should be expired (expired_at set); open, accepted and cancelled ones untouched');
SELECT results_eq(
    $$SELECT r.id, e.actor_id, e.from_status, e.to_status, e.session_id
        FROM autodoctor.session_events e JOIN autodoctor.session_requests r ON r.id = e.request_id
       WHERE e.event = 'request_expired' ORDER BY r.id$$,
    $$SELECT r.id, NULL::uuid, 'pending', 'expired', r.session_id
        FROM autodoctor.session_requests r WHERE r.status = 'expired' ORDER BY r.id$$,
    'each expiry should log one request_expired event (no actor, pending -> expired)');
SELECT results_eq(
    $$SELECT l.label, s.status::text, s.cancel_reason, s.ended_at, s.mechanic_id
        FROM autodoctor.sessions s JOIN pg_temp.ids l ON l.id = s.id
       WHERE l.label IN ('s_orphan', 's_live') ORDER BY l.label$$,
    $$VALUES ('s_live', 'cancelled', 'request_expired', now(), NULL::uuid),
             ('s_orphan', 'cancelled', 'request_expired', now(), NULL::uuid)$$,
    'a converted orphan (pending or live) should be cancelled with its expired request');
SELECT results_eq(
    $$SELECT e.session_id, e.request_id, e.from_status, e.to_status, e.detail
        FROM autodoctor.session_events e WHERE e.event = 'orphan_cancelled' ORDER BY e.from_status$$,
    $$VALUES (pg_temp.id('s_live'), pg_temp.id('r_live'), 'live', 'cancelled', '{"reason": "request_expired"}'::jsonb),
             (pg_temp.id('s_orphan'), pg_temp.id('r_orphan'), 'pending', 'cancelled', '{"reason": "request_expired"}'::jsonb)$$,
    'each cancelled orphan should be logged as orphan_cancelled (reason request_expired)');

-- The customer sees their request expired (RLS), another customer does not see it.
SELECT pg_temp.login('alice');
SELECT results_eq(
    $$SELECT status::text FROM autodoctor.session_requests WHERE id = pg_temp.id('r_due')$$,
    $$VALUES ('expired')$$,
    'the customer should read their request as expired');
SELECT pg_temp.login('bob');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE id = pg_temp.id('r_due')$$,
    'another customer should not read it');
SELECT pg_temp.logout();

-- Idempotent: a second sweep finds nothing and writes nothing.
CREATE TEMP TABLE after_first AS SELECT pg_temp.footprint() AS footprint;
SELECT pg_temp.login_service();
SELECT is(autodoctor.expire_stale_requests(), 0, 'a second sweep should expire nothing');
SELECT is_empty($$SELECT * FROM autodoctor.check_invariants()$$,
    'after the sweep every invariant should hold');
SELECT pg_temp.logout();
SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.after_first),
    'a second sweep should write nothing');

SELECT * FROM finish();
ROLLBACK;

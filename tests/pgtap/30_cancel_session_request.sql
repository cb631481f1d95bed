-- cancel_session_request: the owning customer withdraws a pending request.
-- Success path (and a converted orphan's session cancelled with it), every SQLSTATE and
-- reason, another customer's request answered as a missing one, nothing written on failure.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(39);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'cancel_session_request', ARRAY['uuid'],
    'cancel_session_request(uuid) should exist');
SELECT is_definer('autodoctor', 'cancel_session_request', ARRAY['uuid'],
    'cancel_session_request should be SECURITY DEFINER');
SELECT function_privs_are('autodoctor', 'cancel_session_request', ARRAY['uuid'], 'authenticated',
    ARRAY['EXECUTE'], 'authenticated should be granted EXECUTE on cancel_session_request');
SELECT function_privs_are('autodoctor', 'cancel_session_request', ARRAY['uuid'], 'service_role',
    ARRAY[]::name[], 'service_role should not execute cancel_session_request');

-- ---------------------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('mia');

SELECT pg_temp.new_request('r1', 'alice');
SELECT pg_temp.new_request('r_accepted', 'alice');
SELECT pg_temp.new_request('r_expired', 'alice');
SELECT pg_temp.new_request('r_bob', 'bob');

SELECT pg_temp.login('mia');
SELECT pg_temp.remember('s_accepted', (autodoctor.accept_session_request(pg_temp.id('r_accepted'))).id);
SELECT pg_temp.logout();
UPDATE autodoctor.session_requests SET status = 'expired', expired_at = now()
 WHERE id = pg_temp.id('r_expired');

-- Converted legacy orphans: a pending one and a live one, each with its pending request.
SELECT pg_temp.remember('s_orphan', gen_random_uuid());
SELECT pg_temp.remember('s_live', gen_random_uuid());
INSERT INTO autodoctor.sessions (id, customer_user_id, plan, type, status)
VALUES (pg_temp.id('s_orphan'), pg_temp.id('alice'), 'free', 'chat', 'pending'),
       (pg_temp.id('s_live'), pg_temp.id('alice'), 'free', 'video', 'live');
SELECT pg_temp.remember('r_orphan', gen_random_uuid());
SELECT pg_temp.remember('r_live', gen_random_uuid());
INSERT INTO autodoctor.session_requests (id, customer_id, session_type, plan_code, session_id)
VALUES (pg_temp.id('r_orphan'), pg_temp.id('alice'), 'chat', 'free', pg_temp.id('s_orphan')),
       (pg_temp.id('r_live'), pg_temp.id('alice'), 'video', 'free', pg_temp.id('s_live'));

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('mia');
SELECT isnt_empty(
    $$SELECT id FROM autodoctor.incoming_requests WHERE id = pg_temp.id('r1')$$,
    'fixture: an eligible mechanic sees the pending request before it is cancelled');
SELECT pg_temp.login('alice');
SELECT results_eq(
    $$SELECT r.id, r.status::text, r.cancelled_at FROM autodoctor.cancel_session_request(request_id => pg_temp.id('r1')) AS r$$,
    $$VALUES (pg_temp.id('r1'), 'cancelled', now())$$,
    'cancel should return the request, cancelled now, to its customer');
SELECT results_eq(
    $$SELECT status::text, mechanic_id, session_id FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')$$,
    $$VALUES ('cancelled', NULL::uuid, NULL::uuid)$$,
    'cancel should store the request as cancelled, with no mechanic and no session');
SELECT pg_temp.login('mia');
SELECT is_empty(
    $$SELECT id FROM autodoctor.incoming_requests WHERE id = pg_temp.id('r1')$$,
    'a cancelled request should leave the mechanics'' incoming requests');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')$$,
    'a cancelled request should no longer be readable by a mechanic');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT event, actor_id, session_id, from_status, to_status
        FROM autodoctor.session_events WHERE request_id = pg_temp.id('r1') AND event <> 'new_request'$$,
    $$VALUES ('request_cancelled', pg_temp.id('alice'), NULL::uuid, 'pending', 'cancelled')$$,
    'cancel should log one request_cancelled event (customer, pending -> cancelled)');

-- A converted orphan: its session is cancelled with the request, not left orphaned.
SELECT pg_temp.login('alice');
SELECT is(
    (autodoctor.cancel_session_request(pg_temp.id('r_orphan'))).status::text,
    'cancelled',
    'cancel should cancel a converted orphan''s request');
-- A live one is not the customer's to end (transition_session refuses live -> cancelled
-- to them too): refused, nothing changed.
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(pg_temp.id('r_live'))$$,
    '42501', 'not_your_transition',
    'cancel should refuse the request of a converted live orphan');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT id, status::text, cancel_reason, ended_at, mechanic_id FROM autodoctor.sessions
       WHERE id IN (pg_temp.id('s_orphan'), pg_temp.id('s_live')) ORDER BY type$$,
    $$VALUES (pg_temp.id('s_orphan'), 'cancelled', 'request_cancelled', now(), NULL::uuid),
             (pg_temp.id('s_live'), 'live', NULL, NULL::timestamptz, NULL::uuid)$$,
    'cancelling a converted orphan''s request should cancel its session (reason request_cancelled); a live one stays');
SELECT is(
    (SELECT status::text FROM autodoctor.session_requests WHERE id = pg_temp.id('r_live')),
    'pending',
    'the refused request of a live orphan should stay pending');
SELECT results_eq(
    $$SELECT event, session_id FROM autodoctor.session_events
       WHERE request_id = pg_temp.id('r_orphan') ORDER BY id$$,
    $$VALUES ('request_cancelled', pg_temp.id('s_orphan')), ('orphan_cancelled', pg_temp.id('s_orphan'))$$,
    'cancelling a converted orphan should log request_cancelled then orphan_cancelled');

-- ---------------------------------------------------------------------------------------
-- Errors: every SQLSTATE and reason
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint() AS footprint;

SELECT pg_temp.login_nobody();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(pg_temp.id('r_bob'))$$,
    '42501', 'not_authenticated',
    'cancel should refuse a caller without JWT claims');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(gen_random_uuid())$$,
    'PT404', 'request_not_found',
    'cancel should answer PT404 for a request that does not exist');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(NULL)$$,
    'PT404', 'request_not_found',
    'cancel should answer PT404 for a NULL request id');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request('not-a-uuid')$$,
    '22P02', NULL,
    'cancel should refuse a malformed uuid with 22P02');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(pg_temp.id('r_bob'))$$,
    'PT404', 'request_not_found',
    'cancel should answer another customer''s request as not found (PT404, existence not revealed)');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(pg_temp.id('r1'))$$,
    'PT409', 'request_not_pending',
    'cancel should refuse a request that is already cancelled');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(pg_temp.id('r_accepted'))$$,
    'PT409', 'request_not_pending',
    'cancel should refuse an accepted request (its session is cancelled instead)');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(pg_temp.id('r_expired'))$$,
    'PT409', 'request_not_pending',
    'cancel should refuse an expired request');
SELECT pg_temp.login('mia');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(pg_temp.id('r_accepted'))$$,
    'PT404', 'request_not_found',
    'cancel should answer PT404 to the mechanic of a request (only its customer cancels it)');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.cancel_session_request(pg_temp.id('r_bob'))$$,
    'PT404', 'request_not_found',
    'cancel should answer PT404 to a mechanic who can see a pending request');
SELECT pg_temp.logout();

SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.before),
    'a refused cancel should write nothing: no cancelled request or session, no event');
SELECT results_eq(
    $$SELECT status::text FROM autodoctor.session_requests
       WHERE id IN (pg_temp.id('r_bob'), pg_temp.id('r_accepted')) ORDER BY status$$,
    $$VALUES ('accepted'), ('pending')$$,
    'another customer''s request and an accepted request should be left as they were');
SELECT is(
    (SELECT status::text FROM autodoctor.sessions WHERE id = pg_temp.id('s_accepted')),
    'waiting',
    'a refused cancel of an accepted request should leave its session waiting');

SELECT * FROM finish();
ROLLBACK;

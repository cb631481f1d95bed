-- create_session_request: a customer asks for a session (Flow 1).
-- Success path (fields, TTL, names, plans), idempotency, every SQLSTATE and reason it
-- raises, nothing written on failure, and who can read the request afterwards (RLS).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(58);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'create_session_request',
    ARRAY['autodoctor.session_type', 'text', 'text', 'text'],
    'create_session_request(session_type, text, text, text) should exist');
SELECT is_definer('autodoctor', 'create_session_request',
    ARRAY['autodoctor.session_type', 'text', 'text', 'text'],
    'create_session_request should be SECURITY DEFINER');
SELECT function_privs_are('autodoctor', 'create_session_request',
    ARRAY['autodoctor.session_type', 'text', 'text', 'text'], 'authenticated', ARRAY['EXECUTE'],
    'authenticated should be granted EXECUTE on create_session_request');
SELECT function_privs_are('autodoctor', 'create_session_request',
    ARRAY['autodoctor.session_type', 'text', 'text', 'text'], 'service_role', ARRAY[]::name[],
    'service_role should not execute create_session_request (it has no caller)');

-- ---------------------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice Doe');
SELECT pg_temp.new_user('bob');                         -- no full_name: falls back to e-mail
SELECT pg_temp.new_user('carol', 'Carol');
SELECT pg_temp.remember('ghost', gen_random_uuid());    -- a JWT sub with no auth.users row
CREATE TEMP TABLE ttl AS SELECT request_ttl FROM autodoctor.settings;   -- as deployed
GRANT SELECT ON pg_temp.ttl TO PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Success path
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT lives_ok(
    $$SELECT pg_temp.remember('r1', (autodoctor.create_session_request(
          session_type => 'video', plan_code => 'free', notes => 'Brakes squeak when cold')).id)$$,
    'create should succeed for a signed-in customer, called with named arguments');
SELECT results_eq(
    $$SELECT status::text, customer_id, session_type::text, plan_code, notes, customer_name,
             mechanic_id, session_id, intake_id, idempotency_key, accepted_at
        FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')$$,
    $$VALUES ('pending', pg_temp.id('alice'), 'video', 'free', 'Brakes squeak when cold',
              'Alice Doe', NULL::uuid, NULL::uuid, NULL::uuid, NULL::text,
              NULL::timestamptz)$$,
    'create should write a pending request owned by the caller, with the profile name');
SELECT throws_ok(
    $$SELECT customer_email FROM autodoctor.session_requests$$,
    '42501', NULL,
    'signed-in users (mechanics included) should not read customers'' e-mail from the table');
SELECT is(
    (SELECT expires_at - created_at FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')),
    (SELECT request_ttl FROM pg_temp.ttl),
    'create should set expires_at to creation + the request TTL (24 hours unless configured)');
SELECT is(
    (SELECT created_at FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')),
    now(),
    'create should stamp created_at with the transaction time');
SELECT is(
    (SELECT count(*)::int FROM autodoctor.session_events
      WHERE request_id = pg_temp.id('r1') AND event = 'new_request'),
    1,
    'create should log one new_request event for the new request');

-- The returned row is the stored row.
SELECT results_eq(
    $$SELECT r.status::text, r.plan_code, r.session_type::text, r.notes IS NULL, r.idempotency_key IS NULL
        FROM autodoctor.create_session_request('chat', 'standard') AS r$$,
    $$VALUES ('pending', 'standard', 'chat', true, true)$$,
    'create should return the new pending request; notes and idempotency_key default to NULL');
SELECT lives_ok(
    $$SELECT autodoctor.create_session_request('diagnostic', 'premium', repeat('n', 2000))$$,
    'create should accept notes of exactly 2000 characters');
SELECT pg_temp.logout();

SELECT pg_temp.login('bob');
SELECT is(
    (SELECT r.customer_name FROM autodoctor.create_session_request('chat', 'free') AS r),
    'bob@example.test',
    'create should fall back to the e-mail as customer_name when the profile has no name');
SELECT pg_temp.logout();

-- The TTL comes from autodoctor.settings.
UPDATE autodoctor.settings SET request_ttl = interval '2 hours';
SELECT pg_temp.login('carol');
SELECT is(
    (SELECT r.expires_at - r.created_at FROM autodoctor.create_session_request('chat', 'free') AS r),
    interval '2 hours',
    'create should use the request TTL configured in autodoctor.settings');
SELECT pg_temp.logout();
UPDATE autodoctor.settings SET request_ttl = (SELECT request_ttl FROM pg_temp.ttl);

-- ---------------------------------------------------------------------------------------
-- The "new request" e-mail: none in the create's transaction; the fan-out (run by
-- claim_notifications, tests/pgtap/55) queues it to eligible online mechanics
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_mechanic('on_chat', ARRAY['chat']::autodoctor.session_type[]);
SELECT pg_temp.new_mechanic('on_video', ARRAY['video']::autodoctor.session_type[]);
SELECT pg_temp.new_mechanic('off_chat', ARRAY['chat']::autodoctor.session_type[]);
UPDATE autodoctor.mechanics SET online = true WHERE user_id IN (pg_temp.id('on_chat'), pg_temp.id('on_video'));
-- Other committed online mechanics (a demo, a benchmark) must not crowd ours out.
UPDATE autodoctor.settings SET new_request_email_limit = 10000;
SELECT pg_temp.login('carol');
SELECT pg_temp.remember('r_mail', (autodoctor.create_session_request('chat', 'free')).id);
SELECT pg_temp.logout();
SELECT is_empty(
    $$SELECT id FROM autodoctor.notification_outbox WHERE request_id = pg_temp.id('r_mail')$$,
    'create should queue no e-mail in its own transaction');
SELECT is(
    (SELECT notification_sent_at FROM autodoctor.session_requests WHERE id = pg_temp.id('r_mail')),
    NULL,
    'create should leave notification_sent_at NULL until the fan-out');
SELECT autodoctor._fan_out_new_requests(1000) > 0 AS fanned_out \g /dev/null
SELECT results_eq(
    $$SELECT mechanic_id, kind, recipient FROM autodoctor.notification_outbox
       WHERE request_id = pg_temp.id('r_mail')
         AND mechanic_id IN (SELECT id FROM pg_temp.ids)$$,
    $$VALUES (pg_temp.id('on_chat'), 'new_request', 'on_chat@example.test')$$,
    'the fan-out should queue the new-request e-mail to online mechanics of that type only (not offline, not other types)');
SELECT isnt(
    (SELECT notification_sent_at FROM autodoctor.session_requests WHERE id = pg_temp.id('r_mail')),
    NULL,
    'the fan-out should stamp notification_sent_at');
SELECT pg_temp.login('on_chat');
SELECT pg_temp.remember('r_own', (autodoctor.create_session_request('chat', 'free')).id);
SELECT pg_temp.logout();
SELECT autodoctor._fan_out_new_requests(1000) > 0 AS fanned_out \g /dev/null
SELECT is_empty(
    $$SELECT id FROM autodoctor.notification_outbox WHERE request_id = pg_temp.id('r_own')
         AND mechanic_id = pg_temp.id('on_chat')$$,
    'the fan-out should not e-mail a mechanic about their own request');
UPDATE autodoctor.mechanics SET online = false WHERE user_id IN (pg_temp.id('on_chat'), pg_temp.id('on_video'));

-- ---------------------------------------------------------------------------------------
-- Idempotency per (customer, key)
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT pg_temp.remember('k1', (autodoctor.create_session_request('chat', 'free', 'retry me', 'key-1')).id);
SELECT is(
    (autodoctor.create_session_request('chat', 'free', 'retry me', 'key-1')).id,
    pg_temp.id('k1'),
    'create should return the existing request when the same call is retried with the same key');
SELECT is(
    (SELECT count(*)::int FROM autodoctor.session_requests
      WHERE customer_id = pg_temp.id('alice') AND idempotency_key = 'key-1'),
    1,
    'a retried create should not write a second request');
SELECT is(
    (SELECT count(*)::int FROM autodoctor.session_events WHERE request_id = pg_temp.id('k1')),
    1,
    'a retried create should not log a second new_request event');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('video', 'free', 'retry me', 'key-1')$$,
    'PT409', 'idempotency_key_reused',
    'create should refuse a key reused with another session type');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', 'standard', 'retry me', 'key-1')$$,
    'PT409', 'idempotency_key_reused',
    'create should refuse a key reused with another plan');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', 'free', 'other notes', 'key-1')$$,
    'PT409', 'idempotency_key_reused',
    'create should refuse a key reused with other notes');
SELECT pg_temp.logout();

SELECT pg_temp.login('carol');
SELECT isnt(
    (autodoctor.create_session_request('chat', 'free', 'retry me', 'key-1')).id,
    pg_temp.id('k1'),
    'another customer using the same key should get a request of their own');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- Errors: every SQLSTATE and reason, and nothing written
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint() AS footprint;

SELECT pg_temp.login_nobody();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', 'free')$$,
    '42501', 'not_authenticated',
    'create should refuse a caller without JWT claims');
SELECT pg_temp.login('ghost');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', 'free')$$,
    '42501', 'not_authenticated',
    'create should refuse a JWT sub that is not an auth user');

SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', 'gold')$$,
    '22023', 'unknown_plan',
    'create should refuse an unknown plan');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', NULL)$$,
    '22023', 'unknown_plan',
    'create should refuse a NULL plan');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('diagnostic', 'standard')$$,
    '22023', 'plan_forbids_type',
    'create should refuse a session type the plan does not allow');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request(NULL, 'free')$$,
    '22023', 'invalid_session_type',
    'create should refuse a NULL session type');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('telepathy', 'free')$$,
    '22P02', NULL,
    'create should refuse an unknown session type with 22P02');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', 'free', repeat('n', 2001))$$,
    '22023', 'notes_too_long',
    'create should refuse notes longer than 2000 characters');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', 'free', NULL, '')$$,
    '22023', 'invalid_idempotency_key',
    'create should refuse an empty idempotency key');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', 'free', NULL, repeat('k', 201))$$,
    '22023', 'invalid_idempotency_key',
    'create should refuse an idempotency key longer than 200 characters');
SELECT pg_temp.logout();

-- An inactive plan is as unknown as a missing one.
UPDATE autodoctor.plans SET active = false WHERE code = 'premium';
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.create_session_request('chat', 'premium')$$,
    '22023', 'unknown_plan',
    'create should refuse an inactive plan');
SELECT pg_temp.logout();
UPDATE autodoctor.plans SET active = true WHERE code = 'premium';

SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.before),
    'a refused create should write nothing: no request, no event');

-- ---------------------------------------------------------------------------------------
-- Who reads the request (RLS), and no direct writes
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT is(
    (SELECT count(*)::int FROM autodoctor.session_requests),
    4,
    'a customer should read exactly their own requests');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE customer_id <> pg_temp.id('alice')$$,
    'a customer should not read other customers'' requests');
SELECT throws_ok(
    $$INSERT INTO autodoctor.session_requests (customer_id, session_type, plan_code)
      VALUES (pg_temp.id('alice'), 'chat', 'free')$$,
    '42501', NULL,
    'a customer should not insert a request directly (only through the function)');
SELECT throws_ok(
    $$UPDATE autodoctor.session_requests SET status = 'accepted' WHERE id = pg_temp.id('r1')$$,
    '42501', NULL,
    'a customer should not update a request directly');
SELECT pg_temp.logout();

SELECT pg_temp.login('bob');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')$$,
    'another customer should not see alice''s request');
SELECT pg_temp.logout();

SELECT pg_temp.login_service();
SELECT is(
    (SELECT count(*)::int FROM autodoctor.session_requests
      WHERE customer_id IN (pg_temp.id('alice'), pg_temp.id('bob'), pg_temp.id('carol'))),
    8,
    'service_role should read every request');
SELECT pg_temp.logout();

SELECT * FROM finish();
ROLLBACK;

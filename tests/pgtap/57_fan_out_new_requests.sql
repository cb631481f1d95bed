-- fan_out_new_requests: the worker (service_role) queues the new-request e-mails of up to
-- batch_size pending requests not fanned out yet, in a transaction of its own (the step
-- claim_notifications also runs first; its e-mails, order and cap are tested in
-- 55_claim_notifications.sql). Here: the count it returns, batch_size, that each request is
-- fanned out once, invalid_batch_size with nothing written, who may call it. That the
-- worker fans out in short transactions is tested in tests/python (test_worker.py).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(18);
\ir helpers.psql

SELECT has_function('autodoctor', 'fan_out_new_requests', ARRAY['integer'],
    'fan_out_new_requests(integer) should exist');
SELECT is_definer('autodoctor', 'fan_out_new_requests', ARRAY['integer'],
    'fan_out_new_requests should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'fan_out_new_requests', ARRAY['integer'], 'integer',
    'fan_out_new_requests should return how many requests it fanned out');
SELECT function_privs_are('autodoctor', 'fan_out_new_requests', ARRAY['integer'], 'service_role',
    ARRAY['EXECUTE'], 'service_role should execute fan_out_new_requests');
SELECT function_privs_are('autodoctor', 'fan_out_new_requests', ARRAY['integer'], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute fan_out_new_requests');

-- One online mechanic; three new requests of two customers.
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('mech', p_capacity => 5);
UPDATE autodoctor.mechanics SET online = true WHERE user_id = pg_temp.id('mech');
SELECT pg_temp.new_request('r1', 'alice');
SELECT pg_temp.new_request('r2', 'alice');
SELECT pg_temp.new_request('r3', 'bob');

-- Refusals first: nothing written.
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.fan_out_new_requests(0)$$,
    '22023', 'invalid_batch_size', 'a batch_size of 0 should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.fan_out_new_requests(1001)$$,
    '22023', 'invalid_batch_size', 'a batch_size above 1000 should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.fan_out_new_requests(NULL)$$,
    '22023', 'invalid_batch_size', 'a NULL batch_size should be refused');
SELECT pg_temp.logout();
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.fan_out_new_requests()$$,
    '42501', NULL, 'a signed-in user should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is((SELECT count(*)::int FROM autodoctor.notification_outbox), 0,
    'refused calls should queue no e-mail');

-- Two, then the last one, then none: each request once.
SELECT pg_temp.login_service();
SELECT is(autodoctor.fan_out_new_requests(2), 2, 'a batch of 2 should fan out two requests');
SELECT is(autodoctor.fan_out_new_requests(), 1, 'the next call should fan out the one left');
SELECT is(autodoctor.fan_out_new_requests(), 0, 'then nothing is left to fan out');
SELECT pg_temp.logout();
SELECT is(
    (SELECT count(*)::int FROM autodoctor.notification_outbox
      WHERE kind = 'new_request' AND mechanic_id = pg_temp.id('mech')),
    3, 'each request should have queued its one e-mail, once');

SELECT * FROM finish();
ROLLBACK;

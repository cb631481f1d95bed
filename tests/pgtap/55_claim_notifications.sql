-- claim_notifications: the worker (service_role) leases a batch of due e-mails from
-- notification_outbox, oldest first: their next_attempt_at moves five minutes ahead; a
-- new-request e-mail whose request is no longer open is marked dropped instead of returned.
-- The rows leased and dropped, batch_size, invalid_batch_size, who may call it, nothing
-- written on a refusal. SKIP LOCKED between parallel workers is in tests/python.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(22);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'claim_notifications', ARRAY['integer'],
    'claim_notifications(integer) should exist');
SELECT is_definer('autodoctor', 'claim_notifications', ARRAY['integer'],
    'claim_notifications should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'claim_notifications', ARRAY['integer'], 'setof autodoctor.notification_outbox',
    'claim_notifications should return outbox rows');
SELECT function_privs_are('autodoctor', 'claim_notifications', ARRAY['integer'], 'service_role',
    ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on claim_notifications');
SELECT function_privs_are('autodoctor', 'claim_notifications', ARRAY['integer'], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute claim_notifications');

-- ---------------------------------------------------------------------------------------
-- Fixtures: two mechanics online; each new request e-mails both
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_mechanic('mia', p_capacity => 5);
SELECT pg_temp.new_mechanic('pat', p_capacity => 5);
SELECT pg_temp.login('mia');
SELECT autodoctor.set_mechanic_availability(true) IS NOT NULL AS online \g /dev/null
SELECT pg_temp.login('pat');
SELECT autodoctor.set_mechanic_availability(true) IS NOT NULL AS online \g /dev/null
SELECT pg_temp.logout();
SELECT pg_temp.new_request('r_open', 'alice');
SELECT pg_temp.new_request('r_gone', 'alice');        -- cancelled before the worker runs
SELECT pg_temp.new_request('r_late', 'alice');        -- pending, but past its expiry
SELECT pg_temp.login('alice');
SELECT autodoctor.cancel_session_request(pg_temp.id('r_gone')) IS NOT NULL AS cancelled \g /dev/null
SELECT pg_temp.logout();
UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second' WHERE id = pg_temp.id('r_late');
-- The e-mails of r_open, oldest first: mia's falls due a minute earlier.
UPDATE autodoctor.notification_outbox SET next_attempt_at = now() - interval '1 minute'
 WHERE request_id = pg_temp.id('r_open') AND mechanic_id = pg_temp.id('mia');
SELECT is(
    (SELECT count(*)::int FROM autodoctor.notification_outbox WHERE status = 'pending'),
    6,
    'fixture: six e-mails pending (two per request)');

-- ---------------------------------------------------------------------------------------
-- Refusals write nothing
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE outbox_before AS SELECT * FROM autodoctor.notification_outbox;
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT * FROM autodoctor.claim_notifications(0)$$,
    '22023', 'invalid_batch_size', 'a batch_size of 0 should be refused');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT * FROM autodoctor.claim_notifications(1001)$$,
    '22023', 'invalid_batch_size', 'a batch_size above 1000 should be refused');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT * FROM autodoctor.claim_notifications(NULL)$$,
    '22023', 'invalid_batch_size', 'a NULL batch_size should be refused');
SELECT pg_temp.login('mia');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT * FROM autodoctor.claim_notifications()$$,
    '42501', NULL, 'a signed-in user (even a mechanic) should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT * FROM autodoctor.claim_notifications()$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT set_eq(
    $$SELECT * FROM autodoctor.notification_outbox$$,
    $$SELECT * FROM pg_temp.outbox_before$$,
    'a refused claim should lease and drop nothing');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login_service();
SELECT results_eq(
    $$SELECT kind, mechanic_id, recipient, request_id, attempts, next_attempt_at, status
        FROM autodoctor.claim_notifications(batch_size => 1)$$,
    $$VALUES ('new_request', pg_temp.id('mia'), 'mia@example.test', pg_temp.id('r_open'), 0,
              now() + interval '5 minutes', 'pending')$$,
    'batch_size 1 should lease the oldest due e-mail for five minutes');
CREATE TEMP TABLE second_batch AS SELECT * FROM autodoctor.claim_notifications();
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT mechanic_id, request_id, next_attempt_at FROM pg_temp.second_batch$$,
    $$VALUES (pg_temp.id('pat'), pg_temp.id('r_open'), now() + interval '5 minutes')$$,
    'the next claim should lease only the other open e-mail');
SELECT results_eq(
    $$SELECT l.label, o.status, o.last_error, count(*)::int
        FROM autodoctor.notification_outbox o JOIN pg_temp.ids l ON l.id = o.request_id
       GROUP BY 1, 2, 3 ORDER BY 1$$,
    $$VALUES ('r_gone', 'dropped', 'request no longer pending', 2),
             ('r_late', 'dropped', 'request no longer pending', 2),
             ('r_open', 'pending', NULL::text, 2)$$,
    'e-mails of cancelled or expired requests should be dropped, never returned; leased ones stay pending');
SELECT is(
    (SELECT sum(attempts)::int FROM autodoctor.notification_outbox),
    0,
    'leasing should not count as an attempt');

SELECT pg_temp.login_service();
SELECT is_empty($$SELECT * FROM autodoctor.claim_notifications()$$,
    'leased e-mails should not be claimed again while the lease runs');
SELECT pg_temp.logout();

-- The lease runs out (a worker died): the e-mail is due again.
UPDATE autodoctor.notification_outbox SET next_attempt_at = now() - interval '1 second'
 WHERE request_id = pg_temp.id('r_open') AND mechanic_id = pg_temp.id('pat');
SELECT pg_temp.login_service();
SELECT results_eq(
    $$SELECT mechanic_id FROM autodoctor.claim_notifications(10)$$,
    $$VALUES (pg_temp.id('pat'))$$,
    'an e-mail whose lease ran out should be claimed again');
SELECT pg_temp.logout();

SELECT * FROM finish();
ROLLBACK;

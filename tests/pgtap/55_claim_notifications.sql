-- claim_notifications: the worker (service_role) first fans out the new requests (their
-- e-mails are queued here, not in the request's transaction: _fan_out_new_requests), then
-- leases a batch of due e-mails from notification_outbox, oldest first: their
-- next_attempt_at moves five minutes ahead; a new-request e-mail whose request is no longer
-- open is marked dropped instead of returned. The fan-out (the same e-mails, order and cap
-- as _queue_new_request_emails, once per request, none for a request closed before it ran,
-- its index), the rows leased and dropped, batch_size, invalid_batch_size, who may call it,
-- nothing written on a refusal. SKIP LOCKED between parallel workers (claims and fan-outs)
-- is in tests/python.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(40);
\ir helpers.psql
CREATE FUNCTION pg_temp.explain_lines(p_sql text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || p_sql;
END $$;

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
SELECT is_empty(
    $$SELECT o.id FROM autodoctor.notification_outbox o JOIN pg_temp.ids l ON l.id = o.request_id$$,
    'creating a request should queue no e-mail in its transaction');
SELECT is(
    (SELECT count(*)::int FROM autodoctor.session_requests r JOIN pg_temp.ids l ON l.id = r.id
      WHERE r.notification_sent_at IS NULL),
    3,
    'a new request should wait for its fan-out (notification_sent_at NULL)');
-- The fan-out runs (as the worker's claim would), then r_gone and r_late close.
SELECT autodoctor._fan_out_new_requests(1000) >= 3 AS fanned_out \g /dev/null
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

-- ---------------------------------------------------------------------------------------
-- The fan-out: claim_notifications queues a new request's e-mails after its commit
-- ---------------------------------------------------------------------------------------
-- Three located mechanics, 1, 5 and 10 km north of the car; the cap is 2. The twin request
-- (same type and place, another customer) gets its e-mails as create did before the
-- fan-out: _queue_new_request_emails in the request's own transaction.
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('near', p_latitude => 48.8674, p_longitude => 2.2945, p_radius_km => 50, p_capacity => 5);
SELECT pg_temp.new_mechanic('mid', p_latitude => 48.9034, p_longitude => 2.2945, p_radius_km => 50, p_capacity => 5);
SELECT pg_temp.new_mechanic('far', p_latitude => 48.9484, p_longitude => 2.2945, p_radius_km => 50, p_capacity => 5);
UPDATE autodoctor.mechanics SET online = true
 WHERE user_id IN (pg_temp.id('near'), pg_temp.id('mid'), pg_temp.id('far'));
UPDATE autodoctor.settings SET new_request_email_limit = 2;
CREATE FUNCTION pg_temp.intake(p_label text, p_customer text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_temp.login(p_customer);
    PERFORM pg_temp.remember(p_label, (autodoctor.submit_intake(
        'video', 'free', '{"make": "Renault", "model": "Clio", "year": 2019}',
        'Brakes squeal', 48.8584, 2.2945)).id);
    PERFORM pg_temp.logout();
END $$;
SELECT pg_temp.intake('r_twin', 'bob');
SELECT autodoctor._queue_new_request_emails(pg_temp.id('r_twin')) AS inline_queued \g /dev/null
SELECT pg_temp.intake('r_fan', 'alice');
SELECT pg_temp.new_request('r_closed', 'alice');      -- cancelled before any fan-out
SELECT pg_temp.login('alice');
SELECT autodoctor.cancel_session_request(pg_temp.id('r_closed')) IS NOT NULL AS cancelled \g /dev/null
SELECT pg_temp.logout();
-- No mechanic of ours does diagnostics: nobody to e-mail about r_nobody.
UPDATE autodoctor.mechanics SET expertise = ARRAY['chat', 'video']::autodoctor.session_type[]
 WHERE user_id IN (SELECT id FROM pg_temp.ids);
SELECT pg_temp.new_request('r_nobody', 'alice', 'diagnostic');
SELECT is_empty(
    $$SELECT o.id FROM autodoctor.notification_outbox o
       WHERE o.request_id IN (pg_temp.id('r_fan'), pg_temp.id('r_closed'), pg_temp.id('r_nobody'))$$,
    'no e-mail should be queued before the fan-out');
SELECT is(
    (SELECT r.notification_sent_at FROM autodoctor.session_requests r WHERE r.id = pg_temp.id('r_fan')),
    NULL,
    'a request not fanned out yet should have no notification_sent_at');

SELECT pg_temp.login_service();
CREATE TEMP TABLE fan_claim AS SELECT * FROM autodoctor.claim_notifications(batch_size => 10);
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT mechanic_id, recipient, kind FROM autodoctor.notification_outbox
       WHERE request_id = pg_temp.id('r_fan') ORDER BY id$$,
    $$SELECT mechanic_id, recipient, kind FROM autodoctor.notification_outbox
       WHERE request_id = pg_temp.id('r_twin') ORDER BY id$$,
    'the fan-out should queue the very e-mails the inline queueing did: same mechanics, order and cap');
SELECT results_eq(
    $$SELECT mechanic_id FROM autodoctor.notification_outbox
       WHERE request_id = pg_temp.id('r_fan') ORDER BY id$$,
    $$VALUES (pg_temp.id('near')), (pg_temp.id('mid'))$$,
    'the fan-out should e-mail the nearest mechanics first, up to new_request_email_limit');
SELECT set_eq(
    $$SELECT mechanic_id FROM pg_temp.fan_claim WHERE request_id = pg_temp.id('r_fan')$$,
    $$VALUES (pg_temp.id('near')), (pg_temp.id('mid'))$$,
    'the same claim should lease the e-mails it just queued (e-mailed within one worker poll)');
SELECT is_empty(
    $$SELECT o.id FROM autodoctor.notification_outbox o WHERE o.request_id = pg_temp.id('r_closed')$$,
    'a request cancelled before its fan-out should get no e-mail');
SELECT results_eq(
    $$SELECT l.label, r.notification_sent_at IS NOT NULL
        FROM autodoctor.session_requests r JOIN pg_temp.ids l ON l.id = r.id
       WHERE l.label IN ('r_fan', 'r_nobody', 'r_closed') ORDER BY 1$$,
    $$VALUES ('r_closed', false), ('r_fan', true), ('r_nobody', true)$$,
    'the fan-out should stamp every request it fanned out, also one with nobody to e-mail');
SELECT is_empty(
    $$SELECT o.id FROM autodoctor.notification_outbox o WHERE o.request_id = pg_temp.id('r_nobody')$$,
    'a request with no eligible mechanic should get no e-mail');
CREATE TEMP TABLE outbox_after_fan AS SELECT id FROM autodoctor.notification_outbox;
SELECT is(
    autodoctor._fan_out_new_requests(1000),
    0,
    'a second fan-out should find nothing to do (each request is fanned out once)');
SELECT set_eq(
    $$SELECT id FROM autodoctor.notification_outbox$$,
    $$SELECT id FROM pg_temp.outbox_after_fan$$,
    'a second fan-out should queue no e-mail');
SELECT pg_temp.login_service();
SELECT is_empty(
    $$SELECT * FROM autodoctor.claim_notifications(10) WHERE request_id = pg_temp.id('r_fan')$$,
    'a later claim should not fan the request out again');
SELECT pg_temp.logout();

-- Batches: at most batch_size requests, soonest to expire (oldest) first; a request past
-- its expiry is skipped.
SELECT pg_temp.new_user('cid', 'Cid');
SELECT pg_temp.new_request('r_b1', 'cid');
SELECT pg_temp.new_request('r_b2', 'cid');
SELECT pg_temp.new_request('r_b3', 'cid');
UPDATE autodoctor.session_requests SET expires_at = now() + interval '1 minute' WHERE id = pg_temp.id('r_b2');
UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 second' WHERE id = pg_temp.id('r_b3');
SELECT is(autodoctor._fan_out_new_requests(1), 1, 'batch_size should bound the requests fanned out');
SELECT results_eq(
    $$SELECT l.label, r.notification_sent_at IS NOT NULL
        FROM autodoctor.session_requests r JOIN pg_temp.ids l ON l.id = r.id
       WHERE l.label IN ('r_b1', 'r_b2', 'r_b3') ORDER BY 1$$,
    $$VALUES ('r_b1', false), ('r_b2', true), ('r_b3', false)$$,
    'the request closest to its expiry should be fanned out first');
SELECT is(autodoctor._fan_out_new_requests(1000), 1, 'a request past its expiry should never be fanned out');

-- The fan-out finds its requests through its partial index (usable: the predicate and the
-- order match; that it is chosen at volume is measured in tests/python/operations).
SET LOCAL enable_seqscan = off;
SELECT matches(
    (SELECT string_agg(line, E'\n') FROM pg_temp.explain_lines(
        $$SELECT r.id FROM autodoctor.session_requests r
           WHERE r.status = 'pending' AND r.notification_sent_at IS NULL AND r.expires_at > now()
           ORDER BY r.expires_at LIMIT 10 FOR NO KEY UPDATE OF r SKIP LOCKED$$) AS line),
    'Index Scan using session_requests_fan_out_idx',
    'the fan-out query should read session_requests_fan_out_idx in expiry order');
RESET enable_seqscan;
SELECT matches(
    pg_get_functiondef('autodoctor._fan_out_new_requests(integer)'::regprocedure),
    'ORDER BY r\.expires_at\s+LIMIT _fan_out_new_requests\.batch_size\s+FOR NO KEY UPDATE OF r SKIP LOCKED',
    'the fan-out should take its requests FOR NO KEY UPDATE SKIP LOCKED, in index order, a batch at a time');

SELECT * FROM finish();
ROLLBACK;

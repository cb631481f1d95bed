-- complete_notification: the worker (service_role) records one delivery attempt of a
-- leased e-mail: without an error it is sent; with one it is retried after an exponential
-- backoff (30 s, 1 min, 2 min, ... capped at 1 h) until max_attempts, then failed. The row
-- written, every SQLSTATE and reason, who may call it, nothing written on a refusal.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(32);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'complete_notification', ARRAY['bigint', 'text', 'integer'],
    'complete_notification(bigint, text, integer) should exist');
SELECT is_definer('autodoctor', 'complete_notification', ARRAY['bigint', 'text', 'integer'],
    'complete_notification should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'complete_notification', ARRAY['bigint', 'text', 'integer'],
    'autodoctor.notification_outbox', 'complete_notification should return the outbox row');
SELECT function_privs_are('autodoctor', 'complete_notification', ARRAY['bigint', 'text', 'integer'],
    'service_role', ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on complete_notification');
SELECT function_privs_are('autodoctor', 'complete_notification', ARRAY['bigint', 'text', 'integer'],
    'authenticated', ARRAY[]::name[], 'authenticated should not execute complete_notification');

-- ---------------------------------------------------------------------------------------
-- Fixtures: four mechanics online, one request: four e-mails, leased by the worker
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_mechanic('m_sent');
SELECT pg_temp.new_mechanic('m_retry');
SELECT pg_temp.new_mechanic('m_fail');
SELECT pg_temp.new_mechanic('m_cap');
CREATE FUNCTION pg_temp.online_all() RETURNS void LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    FOREACH l IN ARRAY ARRAY['m_sent', 'm_retry', 'm_fail', 'm_cap'] LOOP
        PERFORM pg_temp.login(l);
        PERFORM autodoctor.set_mechanic_availability(true);
    END LOOP;
    PERFORM pg_temp.logout();
END $$;
SELECT pg_temp.online_all();
SELECT pg_temp.new_request('r1', 'alice');
SELECT pg_temp.login_service();
SELECT count(*) AS leased FROM autodoctor.claim_notifications() \g /dev/null
SELECT pg_temp.logout();
CREATE FUNCTION pg_temp.mail(p_label text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT o.id FROM autodoctor.notification_outbox o WHERE o.mechanic_id = pg_temp.id(p_label);
$$;
GRANT EXECUTE ON FUNCTION pg_temp.mail(text) TO PUBLIC;
SELECT is(
    (SELECT count(*)::int FROM autodoctor.notification_outbox WHERE status = 'pending' AND attempts = 0),
    4,
    'fixture: four leased e-mails, no attempt yet');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login_service();
SELECT results_eq(
    $$SELECT status, attempts, sent_at, last_error
        FROM autodoctor.complete_notification(notification_id => pg_temp.mail('m_sent'))$$,
    $$VALUES ('sent', 1, now(), NULL::text)$$,
    'without an error the e-mail should be sent (attempts 1, sent_at set)');
SELECT results_eq(
    $$SELECT status, attempts, next_attempt_at - now(), last_error, sent_at
        FROM autodoctor.complete_notification(pg_temp.mail('m_retry'), 'SMTP 451 try later')$$,
    $$VALUES ('pending', 1, interval '30 seconds', 'SMTP 451 try later', NULL::timestamptz)$$,
    'a first failure should be retried after 30 seconds, the error kept');
SELECT results_eq(
    $$SELECT status, attempts, next_attempt_at - now()
        FROM autodoctor.complete_notification(pg_temp.mail('m_retry'), 'SMTP 451 again')$$,
    $$VALUES ('pending', 2, interval '1 minute')$$,
    'a second failure should be retried after one minute');
SELECT results_eq(
    $$SELECT status, attempts, last_error
        FROM autodoctor.complete_notification(pg_temp.mail('m_retry'), NULL)$$,
    $$VALUES ('sent', 3, NULL::text)$$,
    'a later success should mark it sent');
SELECT results_eq(
    $$SELECT status, attempts FROM autodoctor.complete_notification(pg_temp.mail('m_fail'), 'bounce', max_attempts => 2)$$,
    $$VALUES ('pending', 1)$$,
    'below max_attempts a failure should stay pending');
SELECT results_eq(
    $$SELECT status, attempts, char_length(last_error)
        FROM autodoctor.complete_notification(pg_temp.mail('m_fail'), repeat('x', 2500), max_attempts => 2)$$,
    $$VALUES ('failed', 2, 2000)$$,
    'at max_attempts it should be failed, its error cut to 2000 characters');
SELECT pg_temp.logout();
-- Many attempts already (as if retried all day): the backoff is capped at one hour.
UPDATE autodoctor.notification_outbox SET attempts = 20 WHERE id = pg_temp.mail('m_cap');
SELECT pg_temp.login_service();
SELECT results_eq(
    $$SELECT status, attempts, next_attempt_at - now()
        FROM autodoctor.complete_notification(pg_temp.mail('m_cap'), 'timeout', max_attempts => 100)$$,
    $$VALUES ('pending', 21, interval '1 hour')$$,
    'the backoff should be capped at one hour');
SELECT pg_temp.logout();
SELECT is(
    (SELECT count(*)::int FROM autodoctor.notification_outbox WHERE request_id = pg_temp.id('r1')),
    4,
    'rows should never be deleted');

-- ---------------------------------------------------------------------------------------
-- Errors: every SQLSTATE and reason; nothing written
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE outbox_before AS SELECT * FROM autodoctor.notification_outbox;
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.complete_notification(pg_temp.mail('m_sent'))$$,
    'PT409', 'notification_not_pending', 'a sent e-mail should not be completed again');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.complete_notification(pg_temp.mail('m_fail'), 'again')$$,
    'PT409', 'notification_not_pending', 'a failed e-mail should not be completed again');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.complete_notification(-1)$$,
    'PT404', 'notification_not_found', 'an id that names no e-mail should be PT404');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.complete_notification(NULL)$$,
    'PT404', 'notification_not_found', 'a NULL id should be PT404');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.complete_notification(pg_temp.mail('m_cap'), 'x', max_attempts => 0)$$,
    '22023', 'invalid_max_attempts', 'max_attempts 0 should be refused');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.complete_notification(pg_temp.mail('m_cap'), NULL, max_attempts => 101)$$,
    '22023', 'invalid_max_attempts', 'max_attempts above 100 should be refused');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.complete_notification(pg_temp.mail('m_cap'), NULL, NULL)$$,
    '22023', 'invalid_max_attempts', 'a NULL max_attempts should be refused');
SELECT pg_temp.login('m_cap');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.complete_notification(pg_temp.mail('m_cap'))$$,
    '42501', NULL, 'a signed-in user (even the recipient) should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.complete_notification(1)$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT set_eq(
    $$SELECT * FROM autodoctor.notification_outbox$$,
    $$SELECT * FROM pg_temp.outbox_before$$,
    'a refused completion should change no row');

SELECT * FROM finish();
ROLLBACK;

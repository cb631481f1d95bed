-- relay_events: in relay mode, service_role announces the events logged since the last
-- relay whose transactions have ended, in (txid, id) order, at most batch_size per call,
-- and moves the relay's mark; in transaction mode it announces nothing and returns 0.
-- NOTIFYs are delivered at commit, so their payloads are checked in tests/python
-- (test_events.py); here: the counts, the mark, invalid_batch_size, who may call it.
-- Events "committed by earlier transactions" are written by the superuser with an old txid.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(23);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'relay_events', ARRAY['integer'], 'relay_events(integer) should exist');
SELECT is_definer('autodoctor', 'relay_events', ARRAY['integer'], 'relay_events should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'relay_events', ARRAY['integer'], 'integer',
    'relay_events should return the number announced');
SELECT function_privs_are('autodoctor', 'relay_events', ARRAY['integer'], 'service_role',
    ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on relay_events');
SELECT function_privs_are('autodoctor', 'relay_events', ARRAY['integer'], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute relay_events');

CREATE FUNCTION pg_temp.mark() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT s.last_txid::text || ':' || s.last_event_id::text FROM autodoctor.relay_state s;
$$;
-- Three events of an old, long-ended transaction (txid 3), not yet relayed.
CREATE FUNCTION pg_temp.old_events() RETURNS void LANGUAGE sql AS $$
    INSERT INTO autodoctor.session_events (txid, event, request_id, to_status, session_type, plan_code)
    SELECT '3', 'new_request', gen_random_uuid(), 'pending', 'chat', 'free' FROM generate_series(1, 3);
    UPDATE autodoctor.relay_state SET last_txid = '2', last_event_id = 0;
$$;

-- ---------------------------------------------------------------------------------------
-- Transaction mode: nothing to relay
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.old_events();
SELECT pg_temp.login_service();
SELECT is(autodoctor.relay_events(), 0, 'in transaction mode the relay should announce nothing');
SELECT pg_temp.logout();
SELECT is(pg_temp.mark(), '2:0', 'in transaction mode the relay''s mark should not move');

-- ---------------------------------------------------------------------------------------
-- Relay mode
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login_service();
SELECT autodoctor.set_notify_mode('relay') AS mode \g /dev/null
SELECT pg_temp.logout();
-- The switch started the mark at this transaction; put it back before the old events.
UPDATE autodoctor.relay_state SET last_txid = '2', last_event_id = 0;
-- An event of this very transaction: not final until it ends.
SELECT pg_temp.new_request('r_now', 'alice');

-- Errors first: nothing moves.
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.relay_events(0)$$,
    '22023', 'invalid_batch_size', 'a batch_size of 0 should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.relay_events(100001)$$,
    '22023', 'invalid_batch_size', 'a batch_size above 100000 should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.relay_events(NULL)$$,
    '22023', 'invalid_batch_size', 'a NULL batch_size should be refused');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.relay_events()$$,
    '42501', NULL, 'a signed-in user should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.relay_events()$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT is(pg_temp.mark(), '2:0', 'refused calls should not move the relay''s mark');

-- Success: the old events in batches, in (txid, id) order.
CREATE TEMP TABLE old AS
    SELECT e.id, row_number() OVER (ORDER BY e.id) AS n FROM autodoctor.session_events e WHERE e.txid = '3';
SELECT pg_temp.login_service();
SELECT is(autodoctor.relay_events(batch_size => 2), 2, 'batch_size 2 should announce two of the three final events');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT last_txid::text, last_event_id, relayed_at FROM autodoctor.relay_state$$,
    $$SELECT '3', id, now() FROM pg_temp.old WHERE n = 2$$,
    'the mark should move to the last event announced (its txid and id)');
SELECT pg_temp.login_service();
SELECT is(autodoctor.relay_events(), 1, 'the next call should announce the third');
SELECT is(autodoctor.relay_events(), 0,
    'events of a transaction still running (this one) should not be announced yet');
SELECT pg_temp.logout();
SELECT is(pg_temp.mark(), (SELECT '3:' || id FROM pg_temp.old WHERE n = 3),
    'the mark should stop at the last final event');

-- Back in transaction mode the relay stays quiet even with final events not relayed.
SELECT pg_temp.login_service();
SELECT autodoctor.set_notify_mode('transaction') AS mode \g /dev/null
SELECT pg_temp.logout();
SELECT pg_temp.old_events();
SELECT pg_temp.login_service();
SELECT is(autodoctor.relay_events(), 0, 'after switching back to transaction mode the relay should announce nothing');
SELECT pg_temp.logout();

SELECT * FROM finish();
ROLLBACK;

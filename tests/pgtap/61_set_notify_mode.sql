-- set_notify_mode: service_role switches how broadcasts leave: 'transaction' (each event's
-- own transaction NOTIFYs, the per-event trigger enabled) or 'relay' (the trigger disabled,
-- relay_events announces batches, its mark starting at the oldest running transaction).
-- The setting and the trigger written together, invalid_notify_mode, who may call it.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(23);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'set_notify_mode', ARRAY['text'], 'set_notify_mode(text) should exist');
SELECT is_definer('autodoctor', 'set_notify_mode', ARRAY['text'], 'set_notify_mode should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'set_notify_mode', ARRAY['text'], 'text',
    'set_notify_mode should return the mode in force');
SELECT function_privs_are('autodoctor', 'set_notify_mode', ARRAY['text'], 'service_role',
    ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on set_notify_mode');
SELECT function_privs_are('autodoctor', 'set_notify_mode', ARRAY['text'], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute set_notify_mode');

CREATE FUNCTION pg_temp.notify_state() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT (SELECT s.notify_mode FROM autodoctor.settings s WHERE s.id) || '/' ||
           (SELECT t.tgenabled::text FROM pg_catalog.pg_trigger t
             WHERE t.tgrelid = 'autodoctor.session_events'::regclass AND t.tgname = 'session_events_notify');
$$;
SELECT is(pg_temp.notify_state(), 'transaction/O',
    'fixture: the default is transaction mode, the per-event trigger enabled');

-- ---------------------------------------------------------------------------------------
-- Errors: nothing written
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_notify_mode('batch')$$,
    '22023', 'invalid_notify_mode', 'an unknown mode should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_notify_mode('RELAY')$$,
    '22023', 'invalid_notify_mode', 'modes are lower case');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_notify_mode(NULL)$$,
    '22023', 'invalid_notify_mode', 'a NULL mode should be refused');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_notify_mode('relay')$$,
    '42501', NULL, 'a signed-in user should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.set_notify_mode('relay')$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT is(pg_temp.notify_state(), 'transaction/O', 'refused calls should change neither setting nor trigger');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
UPDATE autodoctor.relay_state SET last_txid = '3', last_event_id = 42;
SELECT pg_temp.login_service();
SELECT is(autodoctor.set_notify_mode(mode => 'relay'), 'relay', 'switching to relay should return relay');
SELECT pg_temp.logout();
SELECT is(pg_temp.notify_state(), 'relay/D',
    'relay mode should be stored and the per-event trigger disabled, together');
SELECT results_eq(
    $$SELECT last_txid, last_event_id FROM autodoctor.relay_state$$,
    $$SELECT pg_snapshot_xmin(pg_current_snapshot()), 0::bigint$$,
    'the relay should start at the oldest running transaction (nothing older announced again)');

-- Again in relay mode: the relay's mark is kept.
UPDATE autodoctor.relay_state SET last_event_id = 42;
SELECT pg_temp.login_service();
SELECT is(autodoctor.set_notify_mode('relay'), 'relay', 'switching to relay again should return relay');
SELECT pg_temp.logout();
SELECT is((SELECT last_event_id FROM autodoctor.relay_state), 42::bigint,
    'switching to the mode in force should keep the relay''s mark');

SELECT pg_temp.login_service();
SELECT is(autodoctor.set_notify_mode('transaction'), 'transaction',
    'switching back should return transaction');
SELECT pg_temp.logout();
SELECT is(pg_temp.notify_state(), 'transaction/O',
    'transaction mode should be stored and the per-event trigger enabled again');

SELECT * FROM finish();
ROLLBACK;

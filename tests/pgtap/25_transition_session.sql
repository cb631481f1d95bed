-- transition_session: a party moves a session through the state machine. The session's
-- mechanic moves it on (scheduled, waiting, live, completed); its customer may cancel it
-- before it is live (a converted orphan's pending request is cancelled with it); anyone
-- else gets PT404 as for a missing session. Success paths with the rows and events written,
-- every SQLSTATE and reason (and HINT), who may call it, nothing written on failure.
-- session_busy needs two connections: tests/python/contract/test_races.py.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(68);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'transition_session', ARRAY['uuid', 'autodoctor.session_status'],
    'transition_session(uuid, session_status) should exist');
SELECT is_definer('autodoctor', 'transition_session', ARRAY['uuid', 'autodoctor.session_status'],
    'transition_session should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'transition_session', ARRAY['uuid', 'autodoctor.session_status'],
    'autodoctor.sessions', 'transition_session should return a sessions row');
SELECT function_privs_are('autodoctor', 'transition_session', ARRAY['uuid', 'autodoctor.session_status'],
    'authenticated', ARRAY['EXECUTE'], 'authenticated should be granted EXECUTE on transition_session');
SELECT function_privs_are('autodoctor', 'transition_session', ARRAY['uuid', 'autodoctor.session_status'],
    'service_role', ARRAY[]::name[], 'service_role should not execute transition_session');
SELECT function_privs_are('autodoctor', 'transition_session', ARRAY['uuid', 'autodoctor.session_status'],
    'anon', ARRAY[]::name[], 'anon should not execute transition_session');

-- ---------------------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('mia', p_capacity => 10);
SELECT pg_temp.new_mechanic('pat');

SELECT pg_temp.new_request('r_run', 'alice');         -- waiting -> live -> completed
SELECT pg_temp.new_request('r_cancel', 'alice');      -- the customer cancels it while waiting
SELECT pg_temp.new_request('r_live', 'alice');        -- live: the customer may no longer cancel
SELECT pg_temp.login('mia');
SELECT pg_temp.remember('s_run', (autodoctor.accept_session_request(pg_temp.id('r_run'))).id);
SELECT pg_temp.remember('s_cancel', (autodoctor.accept_session_request(pg_temp.id('r_cancel'))).id);
SELECT pg_temp.remember('s_live', (autodoctor.accept_session_request(pg_temp.id('r_live'))).id);
SELECT pg_temp.logout();
UPDATE autodoctor.sessions SET status = 'live', started_at = now() WHERE id = pg_temp.id('s_live');

-- A pending session that already has its mechanic (a scheduled booking's first state).
SELECT pg_temp.remember('s_book', gen_random_uuid());
INSERT INTO autodoctor.sessions (id, customer_user_id, mechanic_id, plan, type, status)
VALUES (pg_temp.id('s_book'), pg_temp.id('alice'), pg_temp.id('mia'), 'free', 'chat', 'pending');

-- A converted legacy orphan: a pending session with no mechanic and its pending request.
SELECT pg_temp.new_orphan('s_orphan', 'alice');
SELECT pg_temp.remember('r_orphan', gen_random_uuid());
INSERT INTO autodoctor.session_requests (id, customer_id, session_type, plan_code, session_id)
VALUES (pg_temp.id('r_orphan'), pg_temp.id('alice'), 'chat', 'free', pg_temp.id('s_orphan'));

SELECT is(
    (SELECT active_sessions FROM autodoctor.mechanics WHERE user_id = pg_temp.id('mia')),
    3,
    'fixture: mia holds three active sessions (the pending booking does not count yet)');

-- ---------------------------------------------------------------------------------------
-- Success: the mechanic runs a session, waiting -> live -> completed
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('mia');
SELECT results_eq(
    $$SELECT status::text, started_at, ended_at, duration_minutes
        FROM autodoctor.transition_session(session_id => pg_temp.id('s_run'), to_status => 'live')$$,
    $$VALUES ('live', now(), NULL::timestamptz, NULL::integer)$$,
    'the mechanic should start a waiting session: live, started_at set');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT status::text, started_at FROM autodoctor.sessions WHERE id = pg_temp.id('s_run')$$,
    $$VALUES ('live', now())$$,
    'the session row should be live with started_at stored');
SELECT results_eq(
    $$SELECT event, actor_id, request_id, from_status, to_status
        FROM autodoctor.session_events WHERE session_id = pg_temp.id('s_run') AND event = 'session_status_changed'$$,
    $$VALUES ('session_status_changed', pg_temp.id('mia'), pg_temp.id('r_run'), 'waiting', 'live')$$,
    'starting should log one session_status_changed event (mechanic, waiting -> live)');

SELECT pg_temp.login('mia');
SELECT results_eq(
    $$SELECT status::text, ended_at, duration_minutes, cancel_reason
        FROM autodoctor.transition_session(pg_temp.id('s_run'), 'completed')$$,
    $$VALUES ('completed', now(), 0, NULL::text)$$,
    'the mechanic should complete a live session: ended_at and duration_minutes set');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT from_status, to_status FROM autodoctor.session_events
       WHERE session_id = pg_temp.id('s_run') AND event = 'session_status_changed' ORDER BY id$$,
    $$VALUES ('waiting', 'live'), ('live', 'completed')$$,
    'completing should log a second event (live -> completed)');
SELECT is(
    (SELECT active_sessions FROM autodoctor.mechanics WHERE user_id = pg_temp.id('mia')),
    2,
    'a completed session should no longer count against the mechanic''s capacity');

-- pending -> scheduled -> waiting, by the mechanic.
SELECT pg_temp.login('mia');
SELECT is(
    (autodoctor.transition_session(pg_temp.id('s_book'), 'scheduled')).status::text,
    'scheduled',
    'the mechanic should move a pending session to scheduled');
SELECT is(
    (autodoctor.transition_session(pg_temp.id('s_book'), 'waiting')).status::text,
    'waiting',
    'the mechanic should move a scheduled session to waiting');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT from_status, to_status, actor_id FROM autodoctor.session_events
       WHERE session_id = pg_temp.id('s_book') ORDER BY id$$,
    $$VALUES ('pending', 'scheduled', pg_temp.id('mia')), ('scheduled', 'waiting', pg_temp.id('mia'))$$,
    'each move should be logged with its from and to status');

-- ---------------------------------------------------------------------------------------
-- Success: the customer cancels before the session is live
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT results_eq(
    $$SELECT status::text, cancel_reason, ended_at, mechanic_id
        FROM autodoctor.transition_session(pg_temp.id('s_cancel'), 'cancelled')$$,
    $$VALUES ('cancelled', 'cancelled_by_customer', now(), pg_temp.id('mia'))$$,
    'the customer should cancel a waiting session: cancel_reason cancelled_by_customer, ended_at set');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT event, actor_id, from_status, to_status FROM autodoctor.session_events
       WHERE session_id = pg_temp.id('s_cancel') AND event = 'session_status_changed'$$,
    $$VALUES ('session_status_changed', pg_temp.id('alice'), 'waiting', 'cancelled')$$,
    'the cancel should be logged with the customer as actor');
SELECT is(
    (SELECT status::text FROM autodoctor.session_requests WHERE id = pg_temp.id('r_cancel')),
    'accepted',
    'cancelling an accepted request''s session should leave the request accepted');

-- A converted orphan: its pending request is cancelled with it.
SELECT pg_temp.login('alice');
SELECT is(
    (autodoctor.transition_session(pg_temp.id('s_orphan'), 'cancelled')).status::text,
    'cancelled',
    'the customer should cancel their pending orphaned session');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT status::text, cancelled_at FROM autodoctor.session_requests WHERE id = pg_temp.id('r_orphan')$$,
    $$VALUES ('cancelled', now())$$,
    'the orphan''s converted request should be cancelled with it');
SELECT results_eq(
    $$SELECT event, actor_id, from_status, to_status, detail FROM autodoctor.session_events
       WHERE request_id = pg_temp.id('r_orphan')$$,
    $$VALUES ('request_cancelled', pg_temp.id('alice'), 'pending', 'cancelled', '{"reason": "session_cancelled"}'::jsonb)$$,
    'the request''s cancellation should be logged (reason session_cancelled)');
SELECT results_eq(
    $$SELECT event, from_status, to_status FROM autodoctor.session_events
       WHERE session_id = pg_temp.id('s_orphan') AND event = 'session_status_changed'$$,
    $$VALUES ('session_status_changed', 'pending', 'cancelled')$$,
    'the orphan''s cancellation should be logged');

-- Who reads the result: both parties, nobody else.
SELECT pg_temp.login('alice');
SELECT results_eq(
    $$SELECT status::text FROM autodoctor.my_sessions WHERE id = pg_temp.id('s_run')$$,
    $$VALUES ('completed')$$,
    'the customer should see the completed session in my_sessions');
SELECT pg_temp.login('bob');
SELECT is_empty(
    $$SELECT id FROM autodoctor.sessions WHERE id = pg_temp.id('s_run')$$,
    'another customer should not read the session');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- Errors: every SQLSTATE and reason, with the documented HINTs
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint() AS footprint;

SELECT pg_temp.login_nobody();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_live'), 'completed')$$,
    '42501', 'not_authenticated',
    'transition should refuse a caller without JWT claims');

SELECT pg_temp.login('mia');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_live'), NULL)$$,
    '22023', 'invalid_status',
    'transition should refuse a NULL to_status');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_live'), 'finished')$$,
    '22P02', NULL,
    'transition should refuse a status that is not in the enum with 22P02');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session('not-a-uuid', 'live')$$,
    '22P02', NULL,
    'transition should refuse a malformed uuid with 22P02');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(gen_random_uuid(), 'live')$$,
    'PT404', 'session_not_found',
    'transition should answer PT404 for a session that does not exist');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.transition_session(gen_random_uuid(), 'live')$$),
    'Check the id; list your sessions in autodoctor.my_sessions.',
    'session_not_found should carry its HINT');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(NULL, 'live')$$,
    'PT404', 'session_not_found',
    'transition should answer PT404 for a NULL session id');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_run'), 'live')$$,
    'PT409', 'invalid_transition',
    'transition should refuse to leave a final state (completed -> live)');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.transition_session(pg_temp.id('s_run'), 'live')$$),
    'Allowed: pending->scheduled|waiting|cancelled, scheduled->waiting|cancelled, '
        || 'waiting->live|cancelled, live->completed|cancelled.',
    'invalid_transition should carry the state machine as its HINT');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_live'), 'live')$$,
    'PT409', 'invalid_transition',
    'transition should refuse a move to the same status (live -> live)');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_book'), 'completed')$$,
    'PT409', 'invalid_transition',
    'transition should refuse skipping a state (waiting -> completed)');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_live'), 'cancelled')$$,
    '42501', 'not_your_transition',
    'the mechanic should not cancel a session (only the customer cancels)');

SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_book'), 'live')$$,
    '42501', 'not_your_transition',
    'the customer should not start a session');
SELECT is(
    pg_temp.hint_of($$SELECT autodoctor.transition_session(pg_temp.id('s_book'), 'live')$$),
    'The mechanic starts and completes a session; the customer may cancel it before it is live.',
    'not_your_transition should carry its HINT');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_live'), 'cancelled')$$,
    '42501', 'not_your_transition',
    'the customer should not cancel a live session');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_live'), 'completed')$$,
    '42501', 'not_your_transition',
    'the customer should not complete a session');

-- Anyone else: the same answer as for a missing session.
SELECT pg_temp.login('bob');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_book'), 'cancelled')$$,
    'PT404', 'session_not_found',
    'another customer should get PT404 for a session they take no part in');
SELECT pg_temp.login('pat');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_live'), 'completed')$$,
    'PT404', 'session_not_found',
    'another mechanic should get PT404 for a session that is not theirs');

-- Roles without EXECUTE.
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_live'), 'completed')$$,
    '42501', NULL,
    'service_role should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.transition_session(gen_random_uuid(), 'live')$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');

SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.before),
    'a refused transition should write nothing: no status change, no event');
SELECT results_eq(
    $$SELECT status::text, ended_at FROM autodoctor.sessions WHERE id = pg_temp.id('s_live')$$,
    $$VALUES ('live', NULL::timestamptz)$$,
    'the live session refused above should be untouched');

-- ---------------------------------------------------------------------------------------
-- A customer and their own orphan (no mechanic yet)
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_orphan('s_orphan2', 'alice');
SELECT pg_temp.new_orphan('s_orphan_live', 'alice', p_status => 'live');
CREATE TEMP TABLE before_orphan AS SELECT pg_temp.footprint() AS footprint;
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_orphan2'), 'waiting')$$,
    '42501', 'not_your_transition',
    'the customer should not move their orphan to waiting (not a trigger''s mechanic_required)');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.transition_session(pg_temp.id('s_orphan_live'), 'completed')$$,
    '42501', 'not_your_transition',
    'the customer should not complete their live orphan');
SELECT pg_temp.logout();
SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.before_orphan),
    'refused moves on the customer''s orphans should write nothing');

SELECT * FROM finish();
ROLLBACK;

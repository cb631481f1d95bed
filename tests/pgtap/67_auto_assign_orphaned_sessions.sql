-- auto_assign_orphaned_sessions: repair option 3 (service_role). Oldest orphans first,
-- each to the best available mechanic (active, online, qualified, under capacity, not the
-- customer; the nearest covering one for a located session, else the least loaded one
-- without a location restriction); a converted request is accepted with it, and the
-- mechanic gets a session_assigned e-mail. Rows, events and e-mails written, batch_size,
-- invalid_batch_size, who may call it, nothing written on a refusal or with nobody online.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(32);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'auto_assign_orphaned_sessions', ARRAY['integer'],
    'auto_assign_orphaned_sessions(integer) should exist');
SELECT is_definer('autodoctor', 'auto_assign_orphaned_sessions', ARRAY['integer'],
    'auto_assign_orphaned_sessions should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'auto_assign_orphaned_sessions', ARRAY['integer'], 'integer',
    'auto_assign_orphaned_sessions should return the number assigned');
SELECT function_privs_are('autodoctor', 'auto_assign_orphaned_sessions', ARRAY['integer'], 'service_role',
    ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on auto_assign_orphaned_sessions');
SELECT function_privs_are('autodoctor', 'auto_assign_orphaned_sessions', ARRAY['integer'], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute auto_assign_orphaned_sessions');

-- ---------------------------------------------------------------------------------------
-- Fixtures: all mechanics offline at first
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('mia');                                        -- every type, no location
SELECT pg_temp.new_mechanic('nora', ARRAY['chat']::autodoctor.session_type[],
                            48.8566, 2.3522, 10);                          -- Paris, chat only
SELECT pg_temp.new_mechanic('pat', p_capacity => 5);                       -- goes online later

SELECT pg_temp.new_orphan('s_paris', 'bob', 'chat', 'pending', interval '4 hours', 48.8600, 2.3400);
SELECT pg_temp.new_orphan('s_video', 'alice', 'video', 'pending', interval '3 hours');
SELECT pg_temp.new_orphan('s_conv', 'alice', 'chat', 'live', interval '2 hours');
SELECT pg_temp.new_orphan('s_pats', 'pat', 'chat', 'pending', interval '1 hour', 45.7640, 4.8357);  -- Lyon
SELECT pg_temp.remember('r_conv', gen_random_uuid());
INSERT INTO autodoctor.session_requests (id, customer_id, session_type, plan_code, session_id)
VALUES (pg_temp.id('r_conv'), pg_temp.id('alice'), 'chat', 'free', pg_temp.id('s_conv'));

-- ---------------------------------------------------------------------------------------
-- Refusals and an empty run write nothing
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint_all() AS footprint;
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.auto_assign_orphaned_sessions(0)$$,
    '22023', 'invalid_batch_size',
    'a batch_size of 0 should be refused');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.auto_assign_orphaned_sessions(100001)$$,
    '22023', 'invalid_batch_size',
    'a batch_size above 100000 should be refused');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.auto_assign_orphaned_sessions(NULL)$$,
    '22023', 'invalid_batch_size',
    'a NULL batch_size should be refused');
SELECT is(autodoctor.auto_assign_orphaned_sessions(), 0,
    'with every mechanic offline nothing should be assigned');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.auto_assign_orphaned_sessions()$$,
    '42501', NULL,
    'a signed-in user should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.auto_assign_orphaned_sessions()$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT is(pg_temp.footprint_all(), (SELECT footprint FROM pg_temp.before),
    'refusals and a run with nobody online should write nothing');

-- ---------------------------------------------------------------------------------------
-- Success: mia and nora go online (capacity 1 each)
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('mia');
SELECT autodoctor.set_mechanic_availability(true) IS NOT NULL AS online \g /dev/null
SELECT pg_temp.login('nora');
SELECT autodoctor.set_mechanic_availability(true) IS NOT NULL AS online \g /dev/null
SELECT pg_temp.login_service();
SELECT is(autodoctor.auto_assign_orphaned_sessions(batch_size => 1), 1,
    'batch_size 1 should assign one orphan, the oldest');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT status::text, mechanic_id FROM autodoctor.sessions WHERE id = pg_temp.id('s_paris')$$,
    $$VALUES ('waiting', pg_temp.id('nora'))$$,
    'the oldest orphan, located, should go to the nearest mechanic covering it, waiting');
SELECT results_eq(
    $$SELECT event, actor_id, from_status, to_status, detail FROM autodoctor.session_events
       WHERE session_id = pg_temp.id('s_paris')$$,
    $$VALUES ('session_assigned', NULL::uuid, 'pending', 'waiting',
              jsonb_build_object('via', 'auto_assign', 'mechanic_id', pg_temp.id('nora')))$$,
    'the assignment should be logged as session_assigned (via auto_assign, no actor)');
SELECT results_eq(
    $$SELECT kind, recipient, session_id, request_id, status FROM autodoctor.notification_outbox
       WHERE mechanic_id = pg_temp.id('nora')$$,
    $$VALUES ('session_assigned', 'nora@example.test', pg_temp.id('s_paris'), NULL::uuid, 'pending')$$,
    'the mechanic should get one session_assigned e-mail');
SELECT results_eq(
    $$SELECT l.label FROM autodoctor.sessions s JOIN pg_temp.ids l ON l.id = s.id
       WHERE s.mechanic_id IS NULL ORDER BY s.created_at$$,
    $$VALUES ('s_video'), ('s_conv'), ('s_pats')$$,
    'the other orphans should wait for the next batch');

SELECT pg_temp.login_service();
SELECT is(autodoctor.auto_assign_orphaned_sessions(), 1,
    'the next run should assign the one orphan a free mechanic qualifies for');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT status::text, mechanic_id FROM autodoctor.sessions WHERE id = pg_temp.id('s_video')$$,
    $$VALUES ('waiting', pg_temp.id('mia'))$$,
    'the video orphan should go to the only qualified mechanic online (nora takes chat only)');
SELECT results_eq(
    $$SELECT l.label FROM autodoctor.sessions s JOIN pg_temp.ids l ON l.id = s.id
       WHERE s.mechanic_id IS NULL ORDER BY s.created_at$$,
    $$VALUES ('s_conv'), ('s_pats')$$,
    'orphans with no mechanic under capacity should be left as they are');

-- pat goes online (capacity 5): the converted live orphan is his; his own orphan is not.
SELECT pg_temp.login('pat');
SELECT autodoctor.set_mechanic_availability(true) IS NOT NULL AS online \g /dev/null
SELECT pg_temp.login_service();
SELECT is(autodoctor.auto_assign_orphaned_sessions(), 1,
    'with pat online one more orphan should be assigned');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT status::text, mechanic_id, request_id FROM autodoctor.sessions WHERE id = pg_temp.id('s_conv')$$,
    $$VALUES ('live', pg_temp.id('pat'), pg_temp.id('r_conv'))$$,
    'a live orphan should stay live, with the mechanic and its converted request');
SELECT results_eq(
    $$SELECT status::text, mechanic_id, session_id, accepted_at FROM autodoctor.session_requests
       WHERE id = pg_temp.id('r_conv')$$,
    $$VALUES ('accepted', pg_temp.id('pat'), pg_temp.id('s_conv'), now())$$,
    'the converted request should be accepted with the assignment');
SELECT results_eq(
    $$SELECT kind, session_id, request_id FROM autodoctor.notification_outbox WHERE mechanic_id = pg_temp.id('pat')$$,
    $$VALUES ('session_assigned', pg_temp.id('s_conv'), pg_temp.id('r_conv'))$$,
    'pat should be e-mailed about the session and its request');
SELECT results_eq(
    $$SELECT mechanic_id FROM autodoctor.sessions WHERE id = pg_temp.id('s_pats')$$,
    $$VALUES (NULL::uuid)$$,
    'an orphan should never be assigned to its own customer');
SELECT is(
    (SELECT active_sessions FROM autodoctor.mechanics WHERE user_id = pg_temp.id('pat')),
    1,
    'the assigned live session should count against pat''s capacity');

-- Who reads the result.
SELECT pg_temp.login('alice');
SELECT results_eq(
    $$SELECT id, mechanic_id FROM autodoctor.my_sessions WHERE my_role = 'customer' ORDER BY created_at$$,
    $$VALUES (pg_temp.id('s_video'), pg_temp.id('mia')), (pg_temp.id('s_conv'), pg_temp.id('pat'))$$,
    'the customer should see their sessions with the mechanics assigned');
SELECT pg_temp.logout();

-- What is left: pat's own orphan, for conversion.
SELECT pg_temp.login_service();
SELECT results_eq(
    $$SELECT invariant, detail ->> 'session_id' FROM autodoctor.check_invariants()$$,
    $$VALUES ('orphan_without_pending_request', pg_temp.id('s_pats')::text)$$,
    'only the orphan no mechanic could take should be left (for conversion)');
SELECT pg_temp.logout();

SELECT * FROM finish();
ROLLBACK;

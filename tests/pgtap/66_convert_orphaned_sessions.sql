-- convert_orphaned_sessions: repair option 2 (service_role). Every active orphan without a
-- pending request gets one pointing at it (customer, type and intake location from the
-- session; an unknown plan, or one forbidding the type, falls back to free), and online
-- mechanics are e-mailed; an orphan without a customer is cancelled (no_customer).
-- The rows, events and e-mails written, idempotence, who may call it.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(23);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'convert_orphaned_sessions', ARRAY[]::text[],
    'convert_orphaned_sessions() should exist');
SELECT is_definer('autodoctor', 'convert_orphaned_sessions', ARRAY[]::text[],
    'convert_orphaned_sessions should be SECURITY DEFINER');
SELECT function_returns('autodoctor', 'convert_orphaned_sessions', ARRAY[]::text[], 'integer',
    'convert_orphaned_sessions should return the number converted');
SELECT function_privs_are('autodoctor', 'convert_orphaned_sessions', ARRAY[]::text[], 'service_role',
    ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on convert_orphaned_sessions');
SELECT function_privs_are('autodoctor', 'convert_orphaned_sessions', ARRAY[]::text[], 'authenticated',
    ARRAY[]::name[], 'authenticated should not execute convert_orphaned_sessions');

-- ---------------------------------------------------------------------------------------
-- Fixtures
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('mia', p_capacity => 10);
SELECT pg_temp.login('mia');
SELECT autodoctor.set_mechanic_availability(true) IS NOT NULL AS online \g /dev/null
SELECT pg_temp.logout();

SELECT pg_temp.new_orphan('s_pend', 'alice', 'video', 'pending', interval '3 hours');
SELECT pg_temp.new_orphan('s_live', 'alice', 'chat', 'live', interval '2 hours');
UPDATE autodoctor.sessions SET plan = 'gold' WHERE id = pg_temp.id('s_live');           -- not in the catalogue
SELECT pg_temp.new_orphan('s_std', 'bob', 'diagnostic', 'pending', interval '90 minutes');
UPDATE autodoctor.sessions SET plan = 'standard' WHERE id = pg_temp.id('s_std');        -- forbids diagnostic
SELECT pg_temp.new_orphan('s_here', 'bob', 'chat', 'pending', interval '1 hour', 48.8584, 2.2945);
SELECT pg_temp.new_orphan('s_nobody', NULL, 'chat', 'pending', interval '30 minutes');
-- Not to convert: one already converted, one with a mechanic, one closed.
SELECT pg_temp.new_orphan('s_done', 'bob', 'chat', 'pending', interval '4 hours');
SELECT pg_temp.remember('r_done', gen_random_uuid());
INSERT INTO autodoctor.session_requests (id, customer_id, session_type, plan_code, session_id)
VALUES (pg_temp.id('r_done'), pg_temp.id('bob'), 'chat', 'free', pg_temp.id('s_done'));
SELECT pg_temp.new_orphan('s_assigned', 'bob', 'chat', 'pending');
UPDATE autodoctor.sessions SET mechanic_id = pg_temp.id('mia'), status = 'waiting'
 WHERE id = pg_temp.id('s_assigned');
SELECT pg_temp.new_orphan('s_closed', 'bob', 'chat', 'pending');
UPDATE autodoctor.sessions SET status = 'cancelled' WHERE id = pg_temp.id('s_closed');

-- ---------------------------------------------------------------------------------------
-- Who may call: a refusal writes nothing
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint_all() AS footprint;
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.convert_orphaned_sessions()$$,
    '42501', NULL,
    'a signed-in user should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of($$SELECT autodoctor.convert_orphaned_sessions()$$),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT is(pg_temp.footprint_all(), (SELECT footprint FROM pg_temp.before),
    'a refused call should convert nothing');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login_service();
SELECT is(autodoctor.convert_orphaned_sessions(), 4,
    'the four active orphans with a customer and no pending request should be converted');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT l.label, r.status::text, r.customer_id, r.session_type::text, r.plan_code, r.customer_name,
             r.expires_at, r.metadata
        FROM autodoctor.session_requests r JOIN pg_temp.ids l ON l.id = r.session_id
       WHERE l.label <> 's_done' ORDER BY l.label$$,
    $$VALUES
        ('s_here', 'pending', pg_temp.id('bob'), 'chat', 'free', 'Bob', now() + interval '1 day',
         jsonb_build_object('migrated_from_session', pg_temp.id('s_here'), 'source', 'orphan')),
        ('s_live', 'pending', pg_temp.id('alice'), 'chat', 'free', 'Alice', now() + interval '1 day',
         jsonb_build_object('migrated_from_session', pg_temp.id('s_live'), 'source', 'orphan')),
        ('s_pend', 'pending', pg_temp.id('alice'), 'video', 'free', 'Alice', now() + interval '1 day',
         jsonb_build_object('migrated_from_session', pg_temp.id('s_pend'), 'source', 'orphan')),
        ('s_std', 'pending', pg_temp.id('bob'), 'diagnostic', 'free', 'Bob', now() + interval '1 day',
         jsonb_build_object('migrated_from_session', pg_temp.id('s_std'), 'source', 'orphan'))$$,
    'each orphan should get one pending request pointing at it (unknown or forbidding plans fall back to free)');
SELECT results_eq(
    $$SELECT r.intake_id, r.location::text FROM autodoctor.session_requests r
       WHERE r.session_id = pg_temp.id('s_here')$$,
    $$SELECT s.intake_id, i.location::text FROM autodoctor.sessions s
        JOIN autodoctor.intakes i ON i.id = s.intake_id WHERE s.id = pg_temp.id('s_here')$$,
    'a located orphan''s request should carry its intake and location');
SELECT results_eq(
    $$SELECT count(*)::int FROM autodoctor.session_requests WHERE session_id = pg_temp.id('s_done')$$,
    $$VALUES (1)$$,
    'an orphan that already has a pending request should get no second one');
SELECT results_eq(
    $$SELECT l.label, s.status::text, s.mechanic_id FROM autodoctor.sessions s
        JOIN pg_temp.ids l ON l.id = s.id
       WHERE l.label IN ('s_pend', 's_live', 's_assigned', 's_closed') ORDER BY l.label$$,
    $$VALUES ('s_assigned', 'waiting', pg_temp.id('mia')), ('s_closed', 'cancelled', NULL::uuid),
             ('s_live', 'live', NULL::uuid), ('s_pend', 'pending', NULL::uuid)$$,
    'converted orphans should keep their status; assigned and closed sessions are untouched');
SELECT results_eq(
    $$SELECT status::text, cancel_reason, ended_at FROM autodoctor.sessions WHERE id = pg_temp.id('s_nobody')$$,
    $$VALUES ('cancelled', 'no_customer', now())$$,
    'an orphan without a customer should be cancelled (no_customer)');
SELECT results_eq(
    $$SELECT e.session_id, e.from_status, e.to_status, e.request_id = r.id
        FROM autodoctor.session_events e JOIN autodoctor.session_requests r ON r.session_id = e.session_id
       WHERE e.event = 'orphan_converted' ORDER BY e.session_id$$,
    $$SELECT s.id, s.status::text, 'pending', true FROM autodoctor.sessions s
       WHERE s.id IN (pg_temp.id('s_pend'), pg_temp.id('s_live'), pg_temp.id('s_std'), pg_temp.id('s_here'))
       ORDER BY s.id$$,
    'each conversion should log one orphan_converted event (session status -> pending, with its request)');
SELECT results_eq(
    $$SELECT event, request_id, from_status, to_status, detail FROM autodoctor.session_events
       WHERE session_id = pg_temp.id('s_nobody')$$,
    $$VALUES ('orphan_cancelled', NULL::uuid, 'pending', 'cancelled', '{"reason": "no_customer"}'::jsonb)$$,
    'the orphan without a customer should be logged as orphan_cancelled (no_customer)');
SELECT results_eq(
    $$SELECT o.kind, o.recipient, count(*)::int FROM autodoctor.notification_outbox o
       WHERE o.mechanic_id = pg_temp.id('mia') GROUP BY 1, 2$$,
    $$VALUES ('new_request', 'mia@example.test', 4)$$,
    'the online mechanic should be e-mailed once per converted request');

-- The customer reads the converted request; the online mechanic can accept it.
SELECT pg_temp.login('alice');
SELECT results_eq(
    $$SELECT session_id FROM autodoctor.session_requests WHERE status = 'pending' ORDER BY session_id$$,
    $$SELECT id FROM autodoctor.sessions WHERE id IN (pg_temp.id('s_pend'), pg_temp.id('s_live'))
       ORDER BY id$$,
    'the customer should read the requests made for their orphans');
SELECT pg_temp.login('mia');
SELECT is(
    (SELECT count(*)::int FROM autodoctor.incoming_requests
      WHERE id IN (SELECT r.id FROM autodoctor.session_requests r WHERE r.session_id IS NOT NULL)),
    5,
    'a qualified mechanic should see the converted requests (and the older one) in incoming_requests');
SELECT pg_temp.logout();

-- Idempotent.
CREATE TEMP TABLE after_first AS SELECT pg_temp.footprint_all() AS footprint;
SELECT pg_temp.login_service();
SELECT is(autodoctor.convert_orphaned_sessions(), 0, 'a second run should convert nothing');
SELECT is_empty($$SELECT * FROM autodoctor.check_invariants()$$,
    'after the conversion every invariant should hold');
SELECT pg_temp.logout();
SELECT is(pg_temp.footprint_all(), (SELECT footprint FROM pg_temp.after_first),
    'a second run should write nothing');

SELECT * FROM finish();
ROLLBACK;

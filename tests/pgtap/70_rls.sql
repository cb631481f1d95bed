-- Row-level security cells not covered by the function files: plans, intakes, settings,
-- profiles and mechanics between users, and sessions between their two parties. Each
-- policy is checked both ways (who reads the row, who does not).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(21);
\ir helpers.psql

SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.new_mechanic('mia');
SELECT pg_temp.new_mechanic('max');

-- Intakes written directly (as the owner): one each for alice and bob.
SELECT pg_temp.remember('i_alice', gen_random_uuid());
SELECT pg_temp.remember('i_bob', gen_random_uuid());
INSERT INTO autodoctor.intakes (id, customer_id, vehicle_make, vehicle_model, vehicle_year, concern)
VALUES (pg_temp.id('i_alice'), pg_temp.id('alice'), 'Renault', 'Clio', 2015, 'Squeaky brakes'),
       (pg_temp.id('i_bob'), pg_temp.id('bob'), 'Peugeot', '208', 2019, 'Engine light');
-- A session between alice and mia.
SELECT pg_temp.new_request('r1', 'alice');
SELECT pg_temp.login('mia');
SELECT pg_temp.remember('s1', (autodoctor.accept_session_request(pg_temp.id('r1'))).id);
SELECT pg_temp.logout();
-- A retired plan.
UPDATE autodoctor.plans SET active = false WHERE code = 'premium';

-- ---------------------------------------------------------------------------------------
-- plans: active ones for signed-in users, all for the service
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT isnt_empty($$SELECT code FROM autodoctor.plans WHERE code = 'free'$$,
    'a signed-in user should read the active plans');
SELECT is_empty($$SELECT code FROM autodoctor.plans WHERE NOT active$$,
    'a signed-in user should not read inactive plans');
SELECT pg_temp.login_service();
SELECT isnt_empty($$SELECT code FROM autodoctor.plans WHERE code = 'premium'$$,
    'service_role should read inactive plans too');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- intakes: a customer's own only
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT results_eq($$SELECT id FROM autodoctor.intakes$$, $$VALUES (pg_temp.id('i_alice'))$$,
    'a customer should read their own intake, and only it');
SELECT pg_temp.login('bob');
SELECT is_empty($$SELECT id FROM autodoctor.intakes WHERE id = pg_temp.id('i_alice')$$,
    'another customer should not read the intake');
SELECT pg_temp.login('mia');
SELECT is_empty($$SELECT id FROM autodoctor.intakes$$,
    'a mechanic should not read customers'' intakes directly');
SELECT pg_temp.login_service();
SELECT is(
    (SELECT count(*)::int FROM autodoctor.intakes WHERE id IN (pg_temp.id('i_alice'), pg_temp.id('i_bob'))),
    2,
    'service_role should read every intake');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- settings: the service only
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT throws_ok($$SELECT * FROM autodoctor.settings$$, '42501', NULL,
    'authenticated should not read the settings (permission denied)');
SELECT pg_temp.login_service();
SELECT is((SELECT count(*)::int FROM autodoctor.settings), 1,
    'service_role should read the one settings row');
SELECT throws_ok($$UPDATE autodoctor.settings SET request_ttl = interval '1 hour'$$, '42501', NULL,
    'service_role should not change the settings');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- profiles and mechanics between users
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('bob');
SELECT is_empty($$SELECT id FROM autodoctor.profiles WHERE id <> pg_temp.id('bob')$$,
    'a user should not read other users'' profiles');
SELECT pg_temp.login('mia');
SELECT is_empty($$SELECT id FROM autodoctor.profiles WHERE id = pg_temp.id('alice')$$,
    'a mechanic should not read their customer''s profile');
SELECT results_eq($$SELECT user_id FROM autodoctor.mechanics$$, $$VALUES (pg_temp.id('mia'))$$,
    'a mechanic should read only their own mechanics row');
SELECT throws_ok($$UPDATE autodoctor.mechanics SET max_concurrent_sessions = 100$$, '42501', NULL,
    'a mechanic should not change their mechanics row directly');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- sessions: its customer and its mechanic
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT results_eq($$SELECT id FROM autodoctor.sessions$$, $$VALUES (pg_temp.id('s1'))$$,
    'the customer should read their session');
SELECT throws_ok($$UPDATE autodoctor.sessions SET status = 'cancelled' WHERE id = pg_temp.id('s1')$$,
    '42501', NULL,
    'the customer should not change the session directly');
SELECT pg_temp.login('mia');
SELECT results_eq($$SELECT id FROM autodoctor.sessions$$, $$VALUES (pg_temp.id('s1'))$$,
    'the mechanic should read their session');
SELECT pg_temp.login('bob');
SELECT is_empty($$SELECT id FROM autodoctor.sessions$$,
    'another customer should read no session');
SELECT pg_temp.login('max');
SELECT is_empty($$SELECT id FROM autodoctor.sessions$$,
    'another mechanic should read no session');
SELECT pg_temp.login_nobody();
SELECT is_empty($$SELECT id FROM autodoctor.session_requests$$,
    'authenticated without claims should read no request');
SELECT pg_temp.login_service();
SELECT results_eq($$SELECT id FROM autodoctor.sessions WHERE id = pg_temp.id('s1')$$, $$VALUES (pg_temp.id('s1'))$$,
    'service_role should read every session');
SELECT pg_temp.logout();

SELECT * FROM finish();
ROLLBACK;

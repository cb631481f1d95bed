-- set_mechanic_availability: the calling active mechanic goes online or offline and may
-- move (without coordinates the location is kept). The row written, every SQLSTATE and
-- reason (and HINT), who may call it, nothing written on failure. 40_mechanics.sql covers
-- more cases.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(24);
\ir helpers.psql

SELECT has_function('autodoctor', 'set_mechanic_availability', ARRAY['boolean', 'double precision', 'double precision'],
    'set_mechanic_availability should exist');
SELECT function_privs_are('autodoctor', 'set_mechanic_availability', ARRAY['boolean', 'double precision', 'double precision'],
    'authenticated', ARRAY['EXECUTE'], 'authenticated should be granted EXECUTE on set_mechanic_availability');
SELECT function_privs_are('autodoctor', 'set_mechanic_availability', ARRAY['boolean', 'double precision', 'double precision'],
    'service_role', ARRAY[]::name[], 'service_role should not execute set_mechanic_availability');

SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_mechanic('mo', p_latitude => 48.8566, p_longitude => 2.3522);
SELECT pg_temp.new_mechanic('ivan');
UPDATE autodoctor.mechanics SET active = false WHERE user_id = pg_temp.id('ivan');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('mo');
SELECT results_eq(
    $$SELECT user_id, online, extensions.st_astext(location::extensions.geometry)
        FROM autodoctor.set_mechanic_availability(online => true)$$,
    $$VALUES (pg_temp.id('mo'), true, 'POINT(2.3522 48.8566)')$$,
    'going online without coordinates should keep the location');
SELECT results_eq(
    $$SELECT online, extensions.st_astext(location::extensions.geometry)
        FROM autodoctor.set_mechanic_availability(true, latitude => 48.8606, longitude => 2.3376)$$,
    $$VALUES (true, 'POINT(2.3376 48.8606)')$$,
    'coordinates should move the mechanic');
SELECT is((autodoctor.set_mechanic_availability(false)).online, false, 'the mechanic should go offline');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT online, updated_at FROM autodoctor.mechanics WHERE user_id = pg_temp.id('mo')$$,
    $$VALUES (false, now())$$,
    'the row should be stored, updated_at set');

-- ---------------------------------------------------------------------------------------
-- Errors
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS
    SELECT pg_temp.footprint() AS footprint,
           (SELECT m.online::text || m.location::text FROM autodoctor.mechanics m WHERE m.user_id = pg_temp.id('mo')) AS mo;
SELECT pg_temp.login_nobody();
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_mechanic_availability(true)$$,
    '42501', 'not_authenticated', 'a caller without JWT claims should be refused');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_mechanic_availability(true)$$,
    '42501', 'not_mechanic', 'a customer has no availability');
SELECT is(pg_temp.hint_of($$SELECT autodoctor.set_mechanic_availability(true)$$),
    'Mechanics are registered by the service with register_mechanic.', 'not_mechanic should carry its HINT');
SELECT pg_temp.login('ivan');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_mechanic_availability(true)$$,
    '42501', 'not_mechanic', 'an inactive mechanic should be refused');
SELECT pg_temp.login('mo');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_mechanic_availability(NULL)$$,
    '22023', 'invalid_online', 'a NULL online flag should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_mechanic_availability(true, latitude => 48.8606)$$,
    '22023', 'invalid_coordinates', 'a latitude without a longitude should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_mechanic_availability(true, 0, 181)$$,
    '22023', 'invalid_coordinates', 'a longitude out of range should be refused');
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.set_mechanic_availability(true)$$,
    '42501', NULL, 'service_role should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(pg_temp.anon_error_of($$SELECT autodoctor.set_mechanic_availability(true)$$), '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT results_eq(
    $$SELECT pg_temp.footprint(), (SELECT m.online::text || m.location::text FROM autodoctor.mechanics m
                                     WHERE m.user_id = pg_temp.id('mo'))$$,
    $$SELECT footprint, mo FROM pg_temp.before$$,
    'a refused call should write nothing (online flag and location unchanged)');

SELECT * FROM finish();
ROLLBACK;

-- register_mechanic: service_role makes a user a mechanic, or updates one (the only way to
-- become one). A new mechanic starts offline; registering again re-activates, replaces
-- expertise, radius and capacity, keeps the online flag and (without coordinates) the
-- location. The row written, every SQLSTATE and reason (and HINT), who may call it,
-- nothing written on failure. 40_mechanics.sql covers the profile trigger and more cases.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(33);
\ir helpers.psql

SELECT has_function('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'register_mechanic should exist');
SELECT function_privs_are('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'service_role', ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on register_mechanic');
SELECT function_privs_are('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'authenticated', ARRAY[]::name[], 'authenticated should not execute register_mechanic');

SELECT pg_temp.new_user('mo', 'Mo');
SELECT pg_temp.new_user('alice', 'Alice');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login_service();
SELECT results_eq(
    $$SELECT user_id, active, online, expertise::text[], extensions.st_astext(location::extensions.geometry),
             service_radius_km, max_concurrent_sessions, active_sessions
        FROM autodoctor.register_mechanic(user_id => pg_temp.id('mo'), latitude => 48.8566, longitude => 2.3522)$$,
    $$VALUES (pg_temp.id('mo'), true, false, ARRAY['chat', 'video', 'diagnostic'], 'POINT(2.3522 48.8566)',
              50::numeric, 1, 0)$$,
    'a new mechanic should be active, offline, take every type, radius 50 km, capacity 1');
SELECT pg_temp.logout();
UPDATE autodoctor.mechanics SET online = true, active = false WHERE user_id = pg_temp.id('mo');
SELECT pg_temp.login_service();
SELECT results_eq(
    $$SELECT active, online, expertise::text[], location IS NOT NULL, service_radius_km, max_concurrent_sessions
        FROM autodoctor.register_mechanic(pg_temp.id('mo'), ARRAY['video', 'chat', 'video']::autodoctor.session_type[],
                                          service_radius_km => 20040, max_concurrent_sessions => 100)$$,
    $$VALUES (true, true, ARRAY['chat', 'video'], true, 20040::numeric, 100)$$,
    're-registering should re-activate, keep online and location, replace expertise (deduplicated), radius and capacity');
SELECT pg_temp.logout();
SELECT is((SELECT count(*)::int FROM autodoctor.mechanics WHERE user_id = pg_temp.id('mo')), 1,
    're-registering should update the one row, not add one');
SELECT pg_temp.login('mo');
SELECT results_eq($$SELECT user_id FROM autodoctor.mechanics$$, $$VALUES (pg_temp.id('mo'))$$,
    'the mechanic should read their own mechanics row');
SELECT pg_temp.login('alice');
SELECT is_empty($$SELECT user_id FROM autodoctor.mechanics$$, 'a customer should read no mechanics row');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- Errors
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint() AS footprint;
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(NULL)$$,
    '22023', 'invalid_user_id', 'a NULL user_id should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(gen_random_uuid())$$,
    'PT404', 'user_not_found', 'a user_id that names no user should be PT404');
SELECT is(pg_temp.hint_of($$SELECT autodoctor.register_mechanic(gen_random_uuid())$$),
    'The user must exist in auth.users (its profile is created with it).', 'user_not_found should carry its HINT');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), ARRAY[]::autodoctor.session_type[])$$,
    '22023', 'invalid_expertise', 'an empty expertise should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), ARRAY['chat', NULL]::autodoctor.session_type[])$$,
    '22023', 'invalid_expertise', 'an expertise with a NULL should be refused');
SELECT is(pg_temp.hint_of($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), NULL)$$),
    'Use session types chat, video, diagnostic.', 'invalid_expertise should carry its HINT');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), latitude => 48.8)$$,
    '22023', 'invalid_coordinates', 'a latitude without a longitude should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), service_radius_km => 0)$$,
    '22023', 'invalid_service_radius', 'a radius of 0 should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), service_radius_km => 20040.1)$$,
    '22023', 'invalid_service_radius', 'a radius beyond 20040 km should be refused');
SELECT is(pg_temp.hint_of($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), service_radius_km => 0)$$),
    'Above 0 km; 20040 km covers the whole earth (the antipode is at most 20004 km away).',
    'invalid_service_radius should carry its HINT');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), max_concurrent_sessions => 0)$$,
    '22023', 'invalid_capacity', 'a capacity of 0 should be refused');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), max_concurrent_sessions => 101)$$,
    '22023', 'invalid_capacity', 'a capacity above 100 should be refused');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason($$SELECT autodoctor.register_mechanic(pg_temp.id('alice'))$$,
    '42501', NULL, 'a signed-in user should not make anyone (themselves included) a mechanic');
SELECT pg_temp.logout();
SELECT is(pg_temp.anon_error_of($$SELECT autodoctor.register_mechanic(gen_random_uuid())$$), '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');
SELECT is(pg_temp.footprint(), (SELECT footprint FROM pg_temp.before),
    'a refused registration should write nothing');

SELECT * FROM finish();
ROLLBACK;

-- Users and mechanics: the profile trigger on auth.users, register_mechanic (service_role,
-- the only way to become a mechanic) and set_mechanic_availability (the mechanic).
-- Success paths, every SQLSTATE and reason, nothing written on failure, and RLS.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(84);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'register_mechanic(uuid, session_type[], double precision, double precision, numeric, integer) should exist');
SELECT is_definer('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'register_mechanic should be SECURITY DEFINER');
SELECT function_privs_are('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'service_role', ARRAY['EXECUTE'], 'service_role should be granted EXECUTE on register_mechanic');
SELECT function_privs_are('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'authenticated', ARRAY[]::name[], 'authenticated should not execute register_mechanic');
SELECT has_function('autodoctor', 'set_mechanic_availability',
    ARRAY['boolean', 'double precision', 'double precision'],
    'set_mechanic_availability(boolean, double precision, double precision) should exist');
SELECT is_definer('autodoctor', 'set_mechanic_availability',
    ARRAY['boolean', 'double precision', 'double precision'],
    'set_mechanic_availability should be SECURITY DEFINER');
SELECT function_privs_are('autodoctor', 'set_mechanic_availability',
    ARRAY['boolean', 'double precision', 'double precision'], 'authenticated', ARRAY['EXECUTE'],
    'authenticated should be granted EXECUTE on set_mechanic_availability');
SELECT function_privs_are('autodoctor', 'set_mechanic_availability',
    ARRAY['boolean', 'double precision', 'double precision'], 'service_role', ARRAY[]::name[],
    'service_role should not execute set_mechanic_availability');

-- ---------------------------------------------------------------------------------------
-- Profiles: created by the trigger on auth.users, full_name only
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice Doe');
SELECT pg_temp.new_user('blank', '   ');
SELECT pg_temp.new_user('long', repeat('L', 250));
SELECT pg_temp.new_user('mia', 'Mia', '{"role": "mechanic"}');
SELECT pg_temp.new_user('nora', 'Nora');
SELECT pg_temp.new_user('ivan', 'Ivan');

SELECT is(
    (SELECT full_name FROM autodoctor.profiles WHERE id = pg_temp.id('alice')),
    'Alice Doe',
    'a new auth user should get a profile with full_name from raw_user_meta_data');
SELECT is(
    (SELECT full_name FROM autodoctor.profiles WHERE id = pg_temp.id('blank')),
    NULL,
    'a blank full_name should be stored as NULL');
SELECT is(
    (SELECT char_length(full_name) FROM autodoctor.profiles WHERE id = pg_temp.id('long')),
    200,
    'a full_name longer than 200 characters should be cut to 200');
SELECT is_empty(
    $$SELECT user_id FROM autodoctor.mechanics WHERE user_id = pg_temp.id('mia')$$,
    'a "role": "mechanic" in user metadata should not make a mechanic');

SELECT pg_temp.login('alice');
SELECT results_eq(
    $$SELECT id FROM autodoctor.profiles$$,
    $$VALUES (pg_temp.id('alice'))$$,
    'a user should read only their own profile');
SELECT pg_temp.login_service();
SELECT is(
    (SELECT count(*)::int FROM autodoctor.profiles
      WHERE id IN (SELECT id FROM pg_temp.ids)),
    6,
    'service_role should read every profile');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- register_mechanic: success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login_service();
SELECT results_eq(
    $$SELECT m.user_id, m.active, m.online, m.expertise, m.location IS NULL,
             m.service_radius_km, m.max_concurrent_sessions
        FROM autodoctor.register_mechanic(user_id => pg_temp.id('mia')) AS m$$,
    $$VALUES (pg_temp.id('mia'), true, false, enum_range(NULL::autodoctor.session_type), true,
              50::numeric, 1)$$,
    'register should make an active, offline mechanic with every type, no location, radius 50, capacity 1');
SELECT results_eq(
    $$SELECT m.expertise, round(extensions.st_y(m.location::extensions.geometry)::numeric, 4),
             round(extensions.st_x(m.location::extensions.geometry)::numeric, 4),
             m.service_radius_km, m.max_concurrent_sessions
        FROM autodoctor.register_mechanic(pg_temp.id('nora'), ARRAY['video', 'chat', 'video']::autodoctor.session_type[],
                                          48.8566, 2.3522, 25, 3) AS m$$,
    $$VALUES (ARRAY['chat', 'video']::autodoctor.session_type[], 48.8566, 2.3522, 25::numeric, 3)$$,
    'register should store deduplicated expertise, the location (lat, lon), radius and capacity');
SELECT is(
    (SELECT extensions.st_srid(location::extensions.geometry) FROM autodoctor.mechanics
      WHERE user_id = pg_temp.id('nora')),
    4326,
    'register should store the location in WGS 84 (SRID 4326)');
SELECT results_eq(
    $$SELECT user_id FROM autodoctor.mechanics WHERE user_id IN (pg_temp.id('mia'), pg_temp.id('nora'))
       ORDER BY user_id$$,
    $$SELECT id FROM pg_temp.ids WHERE label IN ('mia', 'nora') ORDER BY id$$,
    'service_role should read every mechanic');
SELECT lives_ok(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('ivan'))$$,
    'register should succeed for ivan');
SELECT pg_temp.logout();

-- Re-registering updates the mechanic, re-activates them, keeps online and location.
UPDATE autodoctor.mechanics SET active = false, online = true WHERE user_id = pg_temp.id('nora');
SELECT pg_temp.login_service();
SELECT results_eq(
    $$SELECT m.active, m.online, m.expertise, m.location IS NOT NULL, m.service_radius_km, m.max_concurrent_sessions
        FROM autodoctor.register_mechanic(pg_temp.id('nora'), ARRAY['diagnostic']::autodoctor.session_type[]) AS m$$,
    $$VALUES (true, true, ARRAY['diagnostic']::autodoctor.session_type[], true, 50::numeric, 1)$$,
    're-register should re-activate, keep online and location, and update expertise, radius and capacity');
SELECT pg_temp.logout();
SELECT is(
    (SELECT count(*)::int FROM autodoctor.mechanics WHERE user_id = pg_temp.id('nora')),
    1,
    're-register should not create a second mechanics row');

-- ---------------------------------------------------------------------------------------
-- register_mechanic: errors
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'))$$,
    '42501', NULL,
    'register should refuse an authenticated user (only service_role registers mechanics)');
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(NULL)$$,
    '22023', 'invalid_user_id',
    'register should refuse a NULL user id');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(gen_random_uuid())$$,
    'PT404', 'user_not_found',
    'register should answer PT404 for a user that does not exist');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), ARRAY[]::autodoctor.session_type[])$$,
    '22023', 'invalid_expertise',
    'register should refuse an empty expertise');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), NULL)$$,
    '22023', 'invalid_expertise',
    'register should refuse a NULL expertise');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), ARRAY['chat', NULL]::autodoctor.session_type[])$$,
    '22023', 'invalid_expertise',
    'register should refuse an expertise containing NULL');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), ARRAY['welding']::autodoctor.session_type[])$$,
    '22P02', NULL,
    'register should refuse an unknown session type with 22P02');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), latitude => 48.0)$$,
    '22023', 'invalid_coordinates',
    'register should refuse a latitude without a longitude');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), longitude => 2.0)$$,
    '22023', 'invalid_coordinates',
    'register should refuse a longitude without a latitude');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), latitude => 90.5, longitude => 2.0)$$,
    '22023', 'invalid_coordinates',
    'register should refuse a latitude beyond 90');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), latitude => 48.0, longitude => -180.5)$$,
    '22023', 'invalid_coordinates',
    'register should refuse a longitude beyond -180');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), latitude => 'NaN', longitude => 2.0)$$,
    '22023', 'invalid_coordinates',
    'register should refuse a NaN latitude');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), latitude => 48.0, longitude => 'Infinity')$$,
    '22023', 'invalid_coordinates',
    'register should refuse an infinite longitude');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), service_radius_km => 0)$$,
    '22023', 'invalid_service_radius',
    'register should refuse a service radius of 0');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), service_radius_km => 20041)$$,
    '22023', 'invalid_service_radius',
    'register should refuse a service radius beyond 20040 km (the antipode is within it)');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), service_radius_km => NULL)$$,
    '22023', 'invalid_service_radius',
    'register should refuse a NULL service radius');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), service_radius_km => 'NaN')$$,
    '22023', 'invalid_service_radius',
    'register should refuse a NaN service radius');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), max_concurrent_sessions => 0)$$,
    '22023', 'invalid_capacity',
    'register should refuse a capacity of 0');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), max_concurrent_sessions => 101)$$,
    '22023', 'invalid_capacity',
    'register should refuse a capacity beyond 100');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.register_mechanic(pg_temp.id('alice'), max_concurrent_sessions => NULL)$$,
    '22023', 'invalid_capacity',
    'register should refuse a NULL capacity');
SELECT pg_temp.logout();
SELECT is_empty(
    $$SELECT user_id FROM autodoctor.mechanics WHERE user_id = pg_temp.id('alice')$$,
    'a refused registration should write no mechanics row');

-- ---------------------------------------------------------------------------------------
-- set_mechanic_availability: success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('mia');
SELECT results_eq(
    $$SELECT m.user_id, m.online, m.location IS NULL
        FROM autodoctor.set_mechanic_availability(online => true) AS m$$,
    $$VALUES (pg_temp.id('mia'), true, true)$$,
    'availability should put the calling mechanic online, location untouched without coordinates');
SELECT results_eq(
    $$SELECT m.online, round(extensions.st_y(m.location::extensions.geometry)::numeric, 4),
             round(extensions.st_x(m.location::extensions.geometry)::numeric, 4)
        FROM autodoctor.set_mechanic_availability(true, 45.764, 4.8357) AS m$$,
    $$VALUES (true, 45.7640, 4.8357)$$,
    'availability should store new coordinates (lat, lon)');
SELECT results_eq(
    $$SELECT m.online, round(extensions.st_y(m.location::extensions.geometry)::numeric, 4)
        FROM autodoctor.set_mechanic_availability(false) AS m$$,
    $$VALUES (false, 45.7640)$$,
    'availability should go offline and keep the stored location without coordinates');
SELECT results_eq(
    $$SELECT user_id, online FROM autodoctor.mechanics$$,
    $$VALUES (pg_temp.id('mia'), false)$$,
    'a mechanic should read only their own mechanics row');
SELECT pg_temp.login('alice');
SELECT is_empty(
    $$SELECT user_id FROM autodoctor.mechanics$$,
    'a customer should read no mechanics row');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- set_mechanic_availability: errors
-- ---------------------------------------------------------------------------------------
UPDATE autodoctor.mechanics SET active = false WHERE user_id = pg_temp.id('ivan');
CREATE TEMP TABLE before AS
SELECT user_id, online, location, updated_at FROM autodoctor.mechanics
 WHERE user_id IN (SELECT id FROM pg_temp.ids);
GRANT SELECT ON pg_temp.before TO PUBLIC;

SELECT pg_temp.login_nobody();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.set_mechanic_availability(true)$$,
    '42501', 'not_authenticated',
    'availability should refuse a caller without JWT claims');
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.set_mechanic_availability(true)$$,
    '42501', 'not_mechanic',
    'availability should refuse a user who is not a mechanic');
SELECT pg_temp.login('ivan');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.set_mechanic_availability(true)$$,
    '42501', 'not_mechanic',
    'availability should refuse an inactive mechanic');
SELECT pg_temp.login('mia');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.set_mechanic_availability(NULL)$$,
    '22023', 'invalid_online',
    'availability should refuse a NULL online flag');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.set_mechanic_availability(true, 48.0)$$,
    '22023', 'invalid_coordinates',
    'availability should refuse a latitude without a longitude');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.set_mechanic_availability(true, -91, 2.0)$$,
    '22023', 'invalid_coordinates',
    'availability should refuse a latitude below -90');
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.set_mechanic_availability(true, 48.0, 181)$$,
    '22023', 'invalid_coordinates',
    'availability should refuse a longitude beyond 180');
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    $$SELECT autodoctor.set_mechanic_availability(true)$$,
    '42501', NULL,
    'availability should refuse service_role (permission denied: it is the mechanic''s own call)');
SELECT pg_temp.logout();
SELECT set_eq(
    $$SELECT user_id, online, location::text, updated_at FROM autodoctor.mechanics
       WHERE user_id IN (SELECT id FROM pg_temp.ids)$$,
    $$SELECT user_id, online, location::text, updated_at FROM pg_temp.before$$,
    'a refused availability change should write nothing');

SELECT * FROM finish();
ROLLBACK;

-- bench/sql/dispatch.sql: orphaned sessions for auto_assign_orphaned_sessions (item 7).
--
-- psql variables: orphans, mechanics, capacity. Needs bench/sql/helpers.sql first.
-- :mechanics located, online mechanics (every session type, 50 km radius, capacity
-- :capacity) spread over the service region, and :orphans legacy sessions without a
-- mechanic (90% pending, 10% live), 90% of them with an intake located in the region, the
-- rest without a location, created over the last 12 hours, as old code paths wrote them.
\set ON_ERROR_STOP on

INSERT INTO auth.users (id, email, raw_user_meta_data)
SELECT bench.uid('dcust', i), 'dcustomer' || i || '@example.test',
       jsonb_build_object('full_name', 'Customer ' || i)
  FROM generate_series(0, :orphans - 1) AS i;
INSERT INTO auth.users (id, email, raw_user_meta_data)
SELECT bench.uid('dmech', i), 'dmechanic' || i || '@example.test',
       jsonb_build_object('full_name', 'Mechanic ' || i)
  FROM generate_series(0, :mechanics - 1) AS i;

SELECT count(*) AS mechanics_registered
  FROM (SELECT autodoctor.register_mechanic(
                   bench.uid('dmech', i), enum_range(NULL::autodoctor.session_type),
                   extensions.st_y(bench.point(i, 300)::extensions.geometry),
                   extensions.st_x(bench.point(i, 300)::extensions.geometry),
                   50, :capacity)
          FROM generate_series(0, :mechanics - 1) AS i) AS registered;
UPDATE autodoctor.mechanics SET online = true;

INSERT INTO autodoctor.intakes
    (id, customer_id, vehicle_make, vehicle_model, vehicle_year, concern, location)
SELECT bench.uid('dintake', i), bench.uid('dcust', i), 'Ford', 'Focus', 2012,
       'Grinding noise when braking.', bench.point(i, 400)
  FROM generate_series(0, :orphans - 1) AS i
 WHERE i % 10 <> 9;

INSERT INTO autodoctor.sessions
    (id, created_at, updated_at, mechanic_id, customer_user_id, customer_email, plan, type,
     status, intake_id, started_at, metadata)
SELECT bench.uid('dsess', i),
       now() - interval '12 hours' * bench.frac(i, 5),
       now() - interval '12 hours' * bench.frac(i, 5),
       NULL, bench.uid('dcust', i), 'dcustomer' || i || '@example.test', 'free',
       (enum_range(NULL::autodoctor.session_type))[1 + i % 3],
       CASE WHEN i % 10 = 0 THEN 'live' ELSE 'pending' END::autodoctor.session_status,
       CASE WHEN i % 10 <> 9 THEN bench.uid('dintake', i) END,
       CASE WHEN i % 10 = 0 THEN now() - interval '5 minutes' END,
       '{"source": "legacy_intake"}'::jsonb
  FROM generate_series(0, :orphans - 1) AS i;

VACUUM ANALYZE;

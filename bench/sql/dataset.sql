-- bench/sql/dataset.sql: realistic volumes in the benchmark database (never elsewhere).
--
-- psql variables: customers, mechanics, online, requests, sessions, pending.
-- Ids are reproducible from a kind and a number (bench.uid), so pgbench scripts and the
-- Python load generator name rows without looking them up. Users go in through auth.users
-- (its trigger creates the profiles) and mechanics through autodoctor.register_mechanic;
-- the million historical requests, their sessions and intakes are inserted set-based with
-- session_replication_role = replica (no per-row foreign-key or trigger work: the rows are
-- consistent by construction), and the load counter is then recomputed in one statement.
-- Needs bench/sql/helpers.sql first.
\set ON_ERROR_STOP on

-- The load generators create requests for customers drawn at random, far faster than any
-- customer would: the per-customer cap on pending requests (PT429) is lifted here, so the
-- benchmark measures the functions, not the cap.
UPDATE autodoctor.settings SET max_pending_requests = 1000;

-- Users: customers and mechanics, as sign-up writes them (the trigger creates profiles).
INSERT INTO auth.users (id, email, raw_user_meta_data, created_at)
SELECT bench.uid('cust', i), 'customer' || i || '@example.test',
       jsonb_build_object('full_name', 'Customer ' || i), now() - interval '1 day' * (i % 700)
  FROM generate_series(0, :customers - 1) AS i;
INSERT INTO auth.users (id, email, raw_user_meta_data, created_at)
SELECT bench.uid('mech', i), 'mechanic' || i || '@example.test',
       jsonb_build_object('full_name', 'Mechanic ' || i), now() - interval '1 day' * (i % 700)
  FROM generate_series(0, :mechanics - 1) AS i;

-- Mechanics through the contract: 70% take every session type, every one takes video; 95%
-- located in the region with a 25-50 km radius; capacity 50 (so the capacity check runs on
-- every accept but the benchmark's own sessions never reach it).
SELECT count(*) AS mechanics_registered
  FROM (SELECT autodoctor.register_mechanic(
                   bench.uid('mech', i),
                   CASE WHEN i % 10 < 7 THEN enum_range(NULL::autodoctor.session_type)
                        WHEN i % 10 < 9 THEN '{chat,video}'::autodoctor.session_type[]
                        ELSE '{video,diagnostic}'::autodoctor.session_type[] END,
                   CASE WHEN i % 20 <> 19 THEN extensions.st_y(bench.point(i, 100)::extensions.geometry) END,
                   CASE WHEN i % 20 <> 19 THEN extensions.st_x(bench.point(i, 100)::extensions.geometry) END,
                   25 + (i % 6) * 5,
                   50)
          FROM generate_series(0, :mechanics - 1) AS i) AS registered;

-- A fifth of them online (availability is the mechanic's own call; set directly here).
UPDATE autodoctor.mechanics m
   SET online = true
  FROM generate_series(0, :online - 1) AS i
 WHERE m.user_id = bench.uid('mech', i);

-- History tables partitioned by month (when they are): the months of the loaded history
-- need their partitions, named as autodoctor._maintain_partitions() names them.
DO $$
DECLARE
    v_table text;
    v_month date;
    v_name text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['session_events', 'notification_outbox'] LOOP
        CONTINUE WHEN NOT EXISTS (
            SELECT 1 FROM pg_partitioned_table pt
             WHERE pt.partrelid = to_regclass(format('autodoctor.%I', v_table)));
        FOR i IN 0 .. 4 LOOP
            v_month := (date_trunc('month', now()) - make_interval(months => i))::date;
            v_name := format('%s_%s', v_table, to_char(v_month, 'YYYY"m"MM'));
            CONTINUE WHEN to_regclass(format('autodoctor.%I', v_name)) IS NOT NULL;
            EXECUTE format('CREATE TABLE autodoctor.%I PARTITION OF autodoctor.%I FOR VALUES FROM (%L) TO (%L)',
                           v_name, v_table, v_month::timestamptz, (v_month + interval '1 month')::timestamptz);
            EXECUTE format('ALTER TABLE autodoctor.%I ENABLE ROW LEVEL SECURITY', v_name);
        END LOOP;
    END LOOP;
END
$$;

BEGIN;
SET LOCAL session_replication_role = replica;

-- History: :requests requests, the first :sessions accepted (each with its session), the
-- next :pending pending (1% of them already past expires_at, awaiting the sweep), the rest
-- cancelled or expired. Every fifth request came from the intake form, with a location.
INSERT INTO autodoctor.intakes
    (id, created_at, customer_id, vehicle_make, vehicle_model, vehicle_year, vin, concern, location)
SELECT bench.uid('intake', i),
       CASE WHEN i < :sessions OR i >= :sessions + :pending
            THEN now() - interval '1 day' - interval '89 days' * bench.frac(i, 1)
            ELSE now() - interval '20 hours' * bench.frac(i, 1) END,
       bench.uid('cust', (i::bigint * 7919) % :customers),
       (ARRAY['Volkswagen', 'Toyota', 'Ford', 'BMW', 'Opel'])[1 + i % 5],
       (ARRAY['Golf', 'Corolla', 'Focus', '320d', 'Astra'])[1 + i % 5],
       2000 + (i % 24), NULL,
       'Engine light on, rough idle when cold; started after the last service.',
       bench.point(i, 200)
  FROM generate_series(0, :requests - 1, 5) AS i;

INSERT INTO autodoctor.session_requests
    (id, created_at, updated_at, customer_id, mechanic_id, session_type, plan_code, status,
     customer_name, customer_email, notes, accepted_at, notification_sent_at, metadata,
     intake_id, expires_at, session_id, location, cancelled_at, expired_at)
SELECT bench.uid('req', i), c.created_at, c.created_at + interval '5 minutes',
       bench.uid('cust', c.cust),
       CASE WHEN c.status = 'accepted' THEN bench.uid('mech', i % :mechanics) END,
       c.session_type,
       CASE WHEN c.session_type = 'diagnostic' THEN 'premium'
            ELSE (ARRAY['free', 'standard', 'premium'])[1 + i % 3] END,
       c.status::autodoctor.session_request_status,
       'Customer ' || c.cust, 'customer' || c.cust || '@example.test',
       'Brakes squeal when cold.',
       CASE WHEN c.status = 'accepted' THEN c.created_at + interval '3 minutes' END,
       c.created_at + interval '1 second',
       CASE WHEN i % 5 = 0 THEN '{"source": "intake"}'::jsonb ELSE '{}'::jsonb END,
       CASE WHEN i % 5 = 0 THEN bench.uid('intake', i) END,
       c.created_at + interval '24 hours',
       CASE WHEN c.status = 'accepted' THEN bench.uid('sess', i) END,
       CASE WHEN i % 5 = 0 THEN bench.point(i, 200) END,
       CASE WHEN c.status = 'cancelled' THEN c.created_at + interval '2 hours' END,
       CASE WHEN c.status = 'expired' THEN c.created_at + interval '24 hours' END
  FROM generate_series(0, :requests - 1) AS i,
       LATERAL (SELECT
           CASE WHEN i < :sessions THEN 'accepted'
                WHEN i < :sessions + :pending THEN 'pending'
                WHEN i % 3 = 0 THEN 'cancelled'
                ELSE 'expired' END AS status,
           CASE WHEN i >= :sessions AND i < :sessions + :pending THEN
                    CASE WHEN i % 100 = 0 THEN now() - interval '30 hours'
                         ELSE now() - interval '20 hours' * bench.frac(i, 1) END
                ELSE now() - interval '1 day' - interval '89 days' * bench.frac(i, 1) END AS created_at,
           (i::bigint * 7919) % :customers AS cust,
           (enum_range(NULL::autodoctor.session_type))[1 + i % 3] AS session_type) AS c;

-- The event log those changes wrote: new_request for every request, then the change that
-- closed it (what check_invariants() expects), in time order like the real log.
INSERT INTO autodoctor.session_events
    (at, event, request_id, session_id, actor_id, from_status, to_status, session_type, plan_code)
SELECT e.at, e.event, e.request_id, e.session_id, e.actor_id, e.from_status, e.to_status,
       e.session_type, e.plan_code
  FROM (SELECT r.created_at AS at, 'new_request' AS event, r.id AS request_id, NULL::uuid AS session_id,
               r.customer_id AS actor_id, NULL AS from_status, 'pending' AS to_status,
               r.session_type, r.plan_code
          FROM autodoctor.session_requests r
        UNION ALL
        SELECT coalesce(r.accepted_at, r.cancelled_at, r.expired_at),
               CASE r.status WHEN 'accepted' THEN 'request_accepted'
                             WHEN 'cancelled' THEN 'request_cancelled' ELSE 'request_expired' END,
               r.id, r.session_id,
               CASE r.status WHEN 'accepted' THEN r.mechanic_id
                             WHEN 'cancelled' THEN r.customer_id END,
               'pending', r.status::text, r.session_type, r.plan_code
          FROM autodoctor.session_requests r
         WHERE r.status <> 'pending') AS e
 ORDER BY e.at;

INSERT INTO autodoctor.sessions
    (id, created_at, updated_at, mechanic_id, customer_user_id, customer_email, plan, type,
     status, intake_id, scheduled_start, scheduled_for, started_at, ended_at,
     duration_minutes, metadata, request_id, cancel_reason)
SELECT bench.uid('sess', i), r.accepted_at, r.accepted_at, r.mechanic_id, r.customer_id,
       r.customer_email, r.plan_code, r.session_type, c.status, r.intake_id,
       r.accepted_at, r.accepted_at,
       CASE WHEN c.status IN ('live', 'completed') THEN r.accepted_at + interval '2 minutes' END,
       CASE WHEN c.status = 'completed' THEN r.accepted_at + interval '32 minutes' END,
       CASE WHEN c.status = 'completed' THEN 30 END,
       jsonb_build_object('request_id', r.id, 'source', 'request'),
       r.id,
       CASE WHEN c.status = 'cancelled' THEN 'customer_cancelled' END
  FROM generate_series(0, :sessions - 1) AS i
  JOIN autodoctor.session_requests r ON r.id = bench.uid('req', i),
       LATERAL (SELECT (CASE WHEN i % 10 = 0 THEN (ARRAY['scheduled', 'waiting', 'live'])[1 + (i / 10) % 3]
                             WHEN i % 10 = 1 THEN 'cancelled'
                             ELSE 'completed' END)::autodoctor.session_status AS status) AS c;
COMMIT;

-- The load counter, as the trigger would have kept it.
UPDATE autodoctor.mechanics m
   SET active_sessions = l.n
  FROM (SELECT s.mechanic_id, count(*) AS n
          FROM autodoctor.sessions s
         WHERE s.status IN ('scheduled', 'waiting', 'live') AND s.mechanic_id IS NOT NULL
         GROUP BY s.mechanic_id) AS l
 WHERE m.user_id = l.mechanic_id;

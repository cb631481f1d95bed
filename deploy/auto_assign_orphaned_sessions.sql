-- Deploy autodoctor:auto_assign_orphaned_sessions to pg
-- requires: auto_assign_orphaned_sessions@v0.1.0
-- requires: orphan_dispatch
-- requires: intakes

BEGIN;

-- PostGIS may live in any schema (extensions on Supabase, public on a plain PostgreSQL):
-- put it on this transaction's search path, so that the operators and functions named in
-- the SQL-standard body below bind to it by identity as it is created. Nothing looks
-- PostGIS up by name at run time: the functions keep SET search_path = ''.
DO $bind$
BEGIN
    PERFORM pg_catalog.set_config('search_path', (
        SELECT pg_catalog.quote_ident(n.nspname)
          FROM pg_catalog.pg_extension e
          JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'postgis'), true);
END
$bind$;

-- _nearest_available_mechanics: for each located session of the array, the nearest
-- available mechanic whose radius covers it (active, online, qualified, under capacity,
-- same market, not the customer) among its `candidates` nearest, leaving out those in skip
-- (held by another transaction): one KNN walk of the GiST index per session, ordered by
-- distance alone (a second sort key makes the planner sort every mechanic instead of
-- walking the index), no lock (the caller locks). The walk stops after `candidates` rows
-- (1 while nothing is skipped, 20 after, as _nearest_mechanics): skipping inside the walk
-- would read the whole index when another run holds most mechanics. A
-- SQL-standard body, so PostGIS's <-> and st_distance are bound at deploy (above).
-- Sessions without a location, or with no such mechanic, have no row. jit off: the
-- per-session KNN's cost estimate crosses jit_above_cost at a few hundred sessions, and
-- compiling costs more than the whole walk.
CREATE OR REPLACE FUNCTION autodoctor._nearest_available_mechanics(
    session_ids uuid[],
    skip uuid[],
    candidates integer
)
RETURNS TABLE (session_id uuid, mechanic_id uuid)
LANGUAGE sql
STABLE
SET search_path = ''
SET jit = off
BEGIN ATOMIC
    SELECT s.id, n.user_id
      FROM autodoctor.sessions s
      JOIN autodoctor.intakes i ON i.id = s.intake_id
     CROSS JOIN LATERAL (
            SELECT c.user_id
              FROM (SELECT m.user_id, m.location <-> i.location AS distance
                      FROM autodoctor.mechanics m
                     WHERE m.active AND m.online
                       AND m.location IS NOT NULL
                       AND s.type = ANY (m.expertise)
                       AND m.active_sessions < m.max_concurrent_sessions
                       AND m.user_id IS DISTINCT FROM s.customer_user_id
                       AND m.market = s.market
                       AND st_distance(m.location, i.location)
                           <= (m.service_radius_km * 1000)::double precision
                     ORDER BY m.location <-> i.location
                     LIMIT _nearest_available_mechanics.candidates) c
             WHERE c.user_id NOT IN (SELECT k.user_id
                                       FROM unnest(_nearest_available_mechanics.skip) AS k(user_id)
                                      WHERE k.user_id IS NOT NULL)
             ORDER BY c.distance
             LIMIT 1) n
     WHERE s.id = ANY (_nearest_available_mechanics.session_ids)
       AND i.location IS NOT NULL;
END;

COMMENT ON FUNCTION autodoctor._nearest_available_mechanics(uuid[], uuid[], integer) IS
    'Private: for each located session, the nearest of its `candidates` nearest available '
    'mechanics covering it (KNN) that is not one of skip; no lock.';
REVOKE ALL ON FUNCTION autodoctor._nearest_available_mechanics(uuid[], uuid[], integer) FROM PUBLIC;

-- auto_assign_orphaned_sessions: repair option 3, the best available mechanic per orphan,
-- set-based. The batch (oldest orphans first) is locked FOR UPDATE SKIP LOCKED in one
-- statement, their converted requests in another (an orphan whose request someone else
-- holds is left to them). Then passes, each of two statements, until every orphan has a
-- mechanic or a pass assigns nothing and finds no new busy mechanic:
--   1. every orphan still waiting proposes one mechanic: a located one, the nearest
--      available mechanic covering it (KNN; once some are skipped, the nearest not skipped
--      among its 20 nearest, as _pick_mechanic); else (no location, or nobody covers it)
--      the least loaded available one without a location restriction, by water-filling the
--      first free places of its group (type, market, located) ordered by (load, mechanic),
--      the order in which one-by-one picks of the least loaded would fill them. The proposed
--      mechanics are locked FOR UPDATE SKIP LOCKED in user_id order, their room read from
--      the locked row, and each mechanic takes its proposers oldest first up to its room
--      (a window over (mechanic, orphan age)). Mechanics another transaction holds are
--      skipped for the rest of the run, as _pick_mechanic's SKIP LOCKED did.
--   2. the matches are applied in one statement: the converted requests accepted (or
--      cancelled and logged when the session keeps its original request, as _assign_orphan
--      does), the sessions assigned (pending -> waiting, live stays live; the load trigger
--      counts them), session_assigned logged with the same detail, the e-mails queued.
-- Losers of a pass propose again in the next one, to their next choice given the loads
-- the pass left. Nothing ever waits for a lock: parallel runs and concurrent claims or
-- accepts never deadlock, never assign one session twice, never exceed a capacity (the
-- room is read under the mechanic's row lock, and the load trigger checks it again).
-- Orphans left unmatched stay orphans, for the next run. Returns how many it assigned.
-- A run holds the mechanics it assigned until it commits: parallel workers share a backlog
-- best with batches of a few hundred. jit off and work_mem 32MB: the passes' estimates
-- cross jit_above_cost at a few thousand orphans, and their sorts stay in memory.
CREATE OR REPLACE FUNCTION autodoctor.auto_assign_orphaned_sessions(
    batch_size integer DEFAULT 100
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
SET jit = off
SET work_mem = '32MB'
AS $$
DECLARE
    v_todo uuid[];          -- orphans still waiting for a mechanic, oldest first
    v_requests uuid[];      -- their converted requests (locked), same positions, or NULL
    v_locked_sessions uuid[];
    v_locked_requests uuid[];
    v_skip uuid[] := '{}'::uuid[];  -- mechanics another transaction holds
    v_new_skip uuid[];
    v_sessions uuid[];      -- this pass's matches
    v_mechanics uuid[];
    v_match_requests uuid[];
    v_done integer;
    v_assigned integer := 0;
BEGIN
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'batch_size must be between 1 and 100000',
            DETAIL = 'invalid_batch_size';
    END IF;

    -- The batch, oldest first, each orphan locked (skipping those another transaction holds).
    SELECT array_agg(o.id ORDER BY o.created_at, o.id) INTO v_todo
      FROM (SELECT s.id, s.created_at
              FROM autodoctor.sessions s
             WHERE s.mechanic_id IS NULL AND s.status IN ('pending', 'live')
             ORDER BY s.created_at, s.id
             LIMIT batch_size
               FOR UPDATE OF s SKIP LOCKED) o;
    IF v_todo IS NULL THEN
        RETURN 0;
    END IF;

    -- Their converted requests; an orphan whose pending request someone else holds (an
    -- accept or a claim in flight) is left to them.
    SELECT array_agg(r.session_id), array_agg(r.id) INTO v_locked_sessions, v_locked_requests
      FROM (SELECT r.session_id, r.id
              FROM autodoctor.session_requests r
             WHERE r.session_id = ANY (v_todo) AND r.status = 'pending'
               FOR UPDATE OF r SKIP LOCKED) r;
    SELECT array_agg(t.id ORDER BY t.ord), array_agg(l.request_id ORDER BY t.ord)
      INTO v_todo, v_requests
      FROM unnest(v_todo) WITH ORDINALITY AS t(id, ord)
      LEFT JOIN unnest(v_locked_sessions, v_locked_requests) AS l(session_id, request_id)
        ON l.session_id = t.id
     WHERE l.request_id IS NOT NULL
        OR NOT EXISTS (SELECT 1 FROM autodoctor.session_requests r
                        WHERE r.session_id = t.id AND r.status = 'pending');

    WHILE v_todo IS NOT NULL LOOP
        -- 1. Proposals, locks, and each mechanic's oldest proposers up to its room.
        WITH todo AS (
            SELECT t.id, t.ord, t.request_id, s.type, s.market, s.customer_user_id,
                   coalesce((SELECT i.location IS NOT NULL FROM autodoctor.intakes i
                              WHERE i.id = s.intake_id), false) AS located
              FROM unnest(v_todo, v_requests) WITH ORDINALITY AS t(id, request_id, ord)
              JOIN autodoctor.sessions s ON s.id = t.id
        ),
        near AS MATERIALIZED (
            SELECT n.session_id, n.mechanic_id
              FROM autodoctor._nearest_available_mechanics(
                       v_todo, v_skip, CASE WHEN cardinality(v_skip) = 0 THEN 1 ELSE 20 END) n
        ),
        fallback AS (
            SELECT t.*, row_number() OVER (PARTITION BY t.type, t.market, t.located ORDER BY t.ord) AS j
              FROM todo t
             WHERE NOT EXISTS (SELECT 1 FROM near n WHERE n.session_id = t.id)
        ),
        grp AS (
            SELECT f.type, f.market, f.located, count(*) AS n
              FROM fallback f
             GROUP BY f.type, f.market, f.located
        ),
        -- a group's first n + 1 free places, in the order one-by-one picks would fill them
        places AS (
            SELECT g.type, g.market, g.located, x.user_id,
                   row_number() OVER (PARTITION BY g.type, g.market, g.located
                                      ORDER BY x.load, x.user_id) AS j
              FROM grp g
             CROSS JOIN LATERAL (
                    SELECT m.user_id, p.load
                      FROM autodoctor.mechanics m
                     CROSS JOIN LATERAL generate_series(m.active_sessions,
                                                        m.max_concurrent_sessions - 1) AS p(load)
                     WHERE m.active AND m.online
                       AND g.type = ANY (m.expertise)
                       AND m.market = g.market
                       AND (NOT g.located OR m.location IS NULL)
                       AND m.active_sessions < m.max_concurrent_sessions
                       AND m.user_id NOT IN (SELECT k.user_id FROM unnest(v_skip) AS k(user_id)
                                              WHERE k.user_id IS NOT NULL)
                     ORDER BY p.load, m.user_id
                     LIMIT g.n + 1) x
        ),
        proposals AS (
            SELECT n.session_id, n.mechanic_id FROM near n
            UNION ALL
            -- the orphan's place, or the next one when that is its customer's own
            SELECT f.id,
                   CASE WHEN p.user_id IS DISTINCT FROM f.customer_user_id THEN p.user_id
                        ELSE q.user_id END
              FROM fallback f
              LEFT JOIN places p
                ON (p.type, p.market, p.located, p.j) = (f.type, f.market, f.located, f.j)
              LEFT JOIN places q
                ON (q.type, q.market, q.located, q.j) = (f.type, f.market, f.located, f.j + 1)
               AND q.user_id IS DISTINCT FROM f.customer_user_id
             WHERE p.user_id IS NOT NULL
               AND (p.user_id IS DISTINCT FROM f.customer_user_id OR q.user_id IS NOT NULL)
        ),
        locked AS MATERIALIZED (
            SELECT m.user_id, m.max_concurrent_sessions - m.active_sessions AS room
              FROM autodoctor.mechanics m
             WHERE m.user_id IN (SELECT p.mechanic_id FROM proposals p)
               AND m.active AND m.online AND m.active_sessions < m.max_concurrent_sessions
             ORDER BY m.user_id
               FOR UPDATE OF m SKIP LOCKED
        ),
        ranked AS (
            SELECT t.id, t.ord, t.request_id, p.mechanic_id, l.room,
                   row_number() OVER (PARTITION BY p.mechanic_id ORDER BY t.ord) AS k
              FROM proposals p
              JOIN todo t ON t.id = p.session_id
              JOIN locked l ON l.user_id = p.mechanic_id
        )
        SELECT array_agg(r.id ORDER BY r.ord),
               array_agg(r.mechanic_id ORDER BY r.ord),
               array_agg(r.request_id ORDER BY r.ord),
               (SELECT array_agg(DISTINCT p.mechanic_id) FROM proposals p
                 WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE l.user_id = p.mechanic_id))
          INTO v_sessions, v_mechanics, v_match_requests, v_new_skip
          FROM ranked r
         WHERE r.k <= r.room;

        v_done := 0;
        IF v_sessions IS NOT NULL THEN
            -- 2. Apply the matches: what _assign_orphan does for one, for all of them.
            WITH matched AS (
                SELECT a.session_id, a.mechanic_id, a.request_id, a.ord,
                       s.status AS from_status, s.request_id AS original,
                       -- a legacy orphan that still points at its original request keeps it
                       a.request_id IS NOT NULL AND s.request_id IS NOT NULL
                           AND s.request_id <> a.request_id AS keeps_original
                  FROM unnest(v_sessions, v_mechanics, v_match_requests)
                       WITH ORDINALITY AS a(session_id, mechanic_id, request_id, ord)
                  JOIN autodoctor.sessions s ON s.id = a.session_id
            ),
            cancelled AS (
                UPDATE autodoctor.session_requests r
                   SET status = 'cancelled', cancelled_at = now(), updated_at = now()
                  FROM matched a
                 WHERE r.id = a.request_id AND a.keeps_original AND r.status = 'pending'
                RETURNING r.id, a.session_id, r.session_type, r.plan_code
            ),
            accepted AS (
                UPDATE autodoctor.session_requests r
                   SET status = 'accepted', mechanic_id = a.mechanic_id,
                       accepted_at = now(), updated_at = now()
                  FROM matched a
                 WHERE r.id = a.request_id AND NOT a.keeps_original AND r.status = 'pending'
                RETURNING r.id
            ),
            assigned AS (
                UPDATE autodoctor.sessions s
                   SET mechanic_id = a.mechanic_id,
                       request_id = coalesce(s.request_id,
                                             CASE WHEN NOT a.keeps_original THEN a.request_id END),
                       status = CASE WHEN s.status = 'pending' THEN 'waiting'::autodoctor.session_status
                                     ELSE s.status END,
                       updated_at = now()
                  FROM matched a
                 WHERE s.id = a.session_id
                   AND s.mechanic_id IS NULL
                   AND s.status IN ('pending', 'live')
                RETURNING s.id, s.mechanic_id, s.status, s.type, s.plan, a.ord, a.from_status,
                          a.request_id AS converted,
                          coalesce(CASE WHEN NOT a.keeps_original THEN a.request_id END,
                                   a.original) AS logged_request
            ),
            cancel_events AS (
                INSERT INTO autodoctor.session_events
                    (event, request_id, session_id, actor_id, from_status, to_status,
                     session_type, plan_code, detail)
                SELECT 'request_cancelled', c.id, c.session_id, NULL, 'pending', 'cancelled',
                       c.session_type, c.plan_code,
                       jsonb_build_object('reason', 'session_keeps_its_request')
                  FROM cancelled c
            ),
            assign_events AS (
                INSERT INTO autodoctor.session_events
                    (event, request_id, session_id, actor_id, from_status, to_status,
                     session_type, plan_code, detail)
                SELECT 'session_assigned', x.logged_request, x.id, NULL, x.from_status::text,
                       x.status::text, x.type, x.plan,
                       jsonb_build_object('via', 'auto_assign', 'mechanic_id', x.mechanic_id)
                  FROM assigned x
                 ORDER BY x.ord
            ),
            mails AS (
                INSERT INTO autodoctor.notification_outbox
                    (kind, mechanic_id, recipient, request_id, session_id)
                SELECT 'session_assigned', x.mechanic_id, u.email, x.converted, x.id
                  FROM assigned x
                  JOIN auth.users u ON u.id = x.mechanic_id
                 ORDER BY x.ord
            )
            SELECT count(*)::integer INTO v_done FROM assigned;
            v_assigned := v_assigned + v_done;

            SELECT array_agg(t.id ORDER BY t.ord), array_agg(t.request_id ORDER BY t.ord)
              INTO v_todo, v_requests
              FROM unnest(v_todo, v_requests) WITH ORDINALITY AS t(id, request_id, ord)
             WHERE NOT EXISTS (SELECT 1 FROM unnest(v_sessions) AS a(id) WHERE a.id = t.id);
        END IF;
        EXIT WHEN v_done = 0 AND v_new_skip IS NULL;
        v_skip := v_skip || coalesce(v_new_skip, '{}'::uuid[]);
    END LOOP;
    RETURN v_assigned;
END
$$;

COMMENT ON FUNCTION autodoctor.auto_assign_orphaned_sessions(integer) IS
    'Service role: assigns up to batch_size orphaned sessions, oldest first, each to the best '
    'available mechanic (online, qualified, under capacity, nearest then least loaded) and '
    'queues their e-mail. Returns the number assigned. Errors: 22023 invalid_batch_size.';
REVOKE ALL ON FUNCTION autodoctor.auto_assign_orphaned_sessions(integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.auto_assign_orphaned_sessions(integer) TO service_role;

COMMIT;

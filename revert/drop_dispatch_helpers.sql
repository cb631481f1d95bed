-- Revert autodoctor:drop_dispatch_helpers from pg

BEGIN;

-- _nearest_mechanics and _pick_mechanic as change orphan_dispatch (v0.1.0) created them.

-- PostGIS may live in any schema (extensions on Supabase, public on a plain PostgreSQL):
-- put it on this transaction's search path, so that the types, functions and operators
-- named below bind to it by identity as the objects are created. Nothing looks PostGIS
-- up by name at run time: the functions keep SET search_path = ''.
DO $bind$
BEGIN
    PERFORM pg_catalog.set_config('search_path', (
        SELECT pg_catalog.quote_ident(n.nspname)
          FROM pg_catalog.pg_extension e
          JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'postgis'), true);
END
$bind$;

-- _nearest_mechanics: up to 20 available mechanics whose radius covers a located session,
-- nearest first, by a KNN walk of the GiST index (no lock: _pick_mechanic locks). A
-- SQL-standard body, so PostGIS's <-> and st_distance are bound at deploy (above).
-- st_distance, not st_dwithin: with a per-mechanic radius st_dwithin cannot use the index
-- anyway, and its one-row estimate makes the planner sort instead of walking the index
-- nearest-first.
CREATE OR REPLACE FUNCTION autodoctor._nearest_mechanics(
    session_type autodoctor.session_type,
    location geography,
    customer_id uuid,
    market text
)
RETURNS TABLE (user_id uuid, distance double precision)
LANGUAGE sql
STABLE
SET search_path = ''
BEGIN ATOMIC
    SELECT m.user_id,
           m.location <-> _nearest_mechanics.location AS distance
      FROM autodoctor.mechanics m
     WHERE m.active AND m.online
       AND m.location IS NOT NULL
       AND _nearest_mechanics.session_type = ANY (m.expertise)
       AND m.active_sessions < m.max_concurrent_sessions
       AND m.user_id IS DISTINCT FROM _nearest_mechanics.customer_id
       AND m.market = _nearest_mechanics.market
       AND st_distance(m.location, _nearest_mechanics.location)
           <= (m.service_radius_km * 1000)::double precision
     ORDER BY m.location <-> _nearest_mechanics.location
     LIMIT 20;
END;

COMMENT ON FUNCTION autodoctor._nearest_mechanics(autodoctor.session_type, geography, uuid, text) IS
    'Private: up to 20 available mechanics covering a located session, nearest first (KNN).';
REVOKE ALL ON FUNCTION autodoctor._nearest_mechanics(autodoctor.session_type, geography, uuid, text) FROM PUBLIC;

-- _pick_mechanic: the best available mechanic for a session, locked for the caller.
-- Active, online, expertise covering the type, under capacity, not the customer; when the
-- session is located, the nearest located mechanic whose radius covers it (KNN scan of
-- the GiST index), else the least loaded one without a location restriction. Candidates
-- are locked FOR UPDATE SKIP LOCKED: a mechanic busy in another transaction is passed
-- over instead of waited for, so parallel dispatchers never block or deadlock.
CREATE OR REPLACE FUNCTION autodoctor._pick_mechanic(
    session_type autodoctor.session_type,
    location geography,
    customer_id uuid,
    market text
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
    v_pick uuid;
BEGIN
    IF _pick_mechanic.location IS NOT NULL THEN
        -- The nearest candidates first, by a KNN walk of the GiST index (LIMIT, no lock),
        -- then the first of them that can be locked. Locking inside the KNN scan itself
        -- fails on PostgreSQL 15 / PostGIS 3.3 ("attempted to lock invisible tuple"), hence
        -- the MATERIALIZED step.
        WITH nearest AS MATERIALIZED (
            SELECT n.user_id, n.distance
              FROM autodoctor._nearest_mechanics(_pick_mechanic.session_type, _pick_mechanic.location,
                                                 _pick_mechanic.customer_id, _pick_mechanic.market) n
        )
        SELECT m.user_id INTO v_pick
          FROM nearest n
          JOIN autodoctor.mechanics m ON m.user_id = n.user_id
         WHERE m.active AND m.online AND m.active_sessions < m.max_concurrent_sessions
         ORDER BY n.distance
         LIMIT 1
           FOR UPDATE OF m SKIP LOCKED;
        IF v_pick IS NOT NULL THEN
            RETURN v_pick;
        END IF;
    END IF;
    SELECT m.user_id INTO v_pick
      FROM autodoctor.mechanics m
     WHERE m.active AND m.online
       AND (_pick_mechanic.location IS NULL OR m.location IS NULL)
       AND _pick_mechanic.session_type = ANY (m.expertise)
       AND m.active_sessions < m.max_concurrent_sessions
       AND m.user_id IS DISTINCT FROM _pick_mechanic.customer_id
       AND m.market = _pick_mechanic.market
     ORDER BY m.active_sessions, m.user_id
     LIMIT 1
       FOR UPDATE SKIP LOCKED;
    RETURN v_pick;
END
$$;

COMMENT ON FUNCTION autodoctor._pick_mechanic(autodoctor.session_type, geography, uuid, text) IS
    'Private: locks and returns the best available mechanic (nearest, then least loaded), or NULL.';
REVOKE ALL ON FUNCTION autodoctor._pick_mechanic(autodoctor.session_type, geography, uuid, text) FROM PUBLIC;

COMMIT;

-- Deploy autodoctor:incoming_requests to pg
-- requires: session_requests
-- requires: mechanics

BEGIN;

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

-- The calling mechanic's dashboard: pending, unexpired requests they could accept,
-- oldest first. security_invoker, so the caller's row-level security applies too.
CREATE OR REPLACE VIEW autodoctor.incoming_requests
WITH (security_invoker = true)
AS
SELECT r.id,
       r.created_at,
       r.expires_at,
       r.session_type,
       r.plan_code,
       r.customer_name,
       r.notes,
       r.intake_id,
       CASE WHEN r.location IS NOT NULL AND m.location IS NOT NULL
            THEN round((st_distance(r.location, m.location) / 1000)::numeric, 1)
       END AS distance_km
  FROM autodoctor.session_requests r
  JOIN autodoctor.mechanics m ON m.user_id = (SELECT auth.uid())
 WHERE r.status = 'pending'
   AND r.expires_at > now()
   AND m.active
   AND r.market = m.market
   AND r.customer_id <> m.user_id
   AND r.session_type = ANY (m.expertise)
   AND (r.location IS NULL OR m.location IS NULL
        OR st_dwithin(r.location, m.location, (m.service_radius_km * 1000)::double precision))
 ORDER BY r.created_at;

COMMENT ON VIEW autodoctor.incoming_requests IS
    'Mechanic dashboard: pending, unexpired requests the calling mechanic may accept '
    '(active, expertise, service radius), oldest first, with distance_km where known.';

GRANT SELECT ON autodoctor.incoming_requests TO authenticated;

COMMIT;

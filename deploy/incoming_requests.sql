-- Deploy autodoctor:incoming_requests to pg
-- requires: incoming_requests@v0.1.0
-- requires: request_policy_estimates

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
-- oldest first. security_invoker, so the caller's row-level security applies.
--
-- Which pending requests a mechanic may accept (active, same market, expertise, service
-- radius, not expired) is stated once, by the policy session_requests_select_authenticated,
-- which this view reads through. The released view restated all of it, and the planner
-- multiplied both statements as if independent (~70 rows estimated for 45,000), sorted the
-- whole queue and JIT-compiled the plan (st_dwithin costs 10,000 per call, twice per row).
-- Here the view adds only what makes a request incoming rather than the caller's own, and
-- walks session_requests_pending_idx oldest first, stopping after the rows asked for:
--   * the caller's mechanic row is read once, by uncorrelated sub-selects (initplans);
--     a caller who is not an active mechanic reads nothing (a one-time filter);
--   * not a request of theirs as customer, nor one assigned to them (a pending request
--     never has a mechanic: accepting it makes it accepted).
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
       CASE WHEN r.location IS NOT NULL
             AND (SELECT m.location FROM autodoctor.mechanics m
                   WHERE m.user_id = (SELECT auth.uid())) IS NOT NULL
            THEN round((st_distance(r.location,
                                    (SELECT m.location FROM autodoctor.mechanics m
                                      WHERE m.user_id = (SELECT auth.uid()))) / 1000)::numeric, 1)
       END AS distance_km
  FROM autodoctor.session_requests r
 WHERE EXISTS (SELECT 1 FROM autodoctor.mechanics m
                WHERE m.user_id = (SELECT auth.uid()) AND m.active)
   AND r.status = 'pending'
   AND r.customer_id <> (SELECT auth.uid())
   AND r.mechanic_id IS DISTINCT FROM (SELECT auth.uid())
 ORDER BY r.created_at;

COMMENT ON VIEW autodoctor.incoming_requests IS
    'Mechanic dashboard: pending, unexpired requests the calling mechanic may accept '
    '(active, expertise, service radius: the request policy decides), oldest first, with '
    'distance_km where known.';

GRANT SELECT ON autodoctor.incoming_requests TO authenticated;

COMMIT;

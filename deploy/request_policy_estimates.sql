-- Deploy autodoctor:request_policy_estimates to pg
-- requires: session_requests
-- requires: mechanics
-- requires: pending_market_index

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

-- The same rows as before, for every caller: only how the planner estimates the
-- open-request arm changes. coalesce(x, false) is x wherever a policy tests it (USING
-- keeps a row only when the expression is true), and the conditions inside are the
-- released ones, unchanged.
--
-- Why: a read of pending requests through this policy (incoming_requests, which selects
-- status = 'pending' itself) was estimated as the product of the view's pending fraction
-- and the arm's (status = 'pending', expires_at > now(), st_dwithin), as if independent:
-- ~70 rows for 45,000, so the planner sorted the whole queue, and with st_dwithin costed
-- at 10,000 the plan crossed jit_above_cost (JIT: 50 ms to 1.3 s per read).
--   * coalesce(status = 'pending', false): the planner has no statistics for it and takes
--     one half, so the pending fraction is not counted twice; it is the predicate of
--     session_requests_pending_market_idx, which serves this arm with the caller's market
--     as index condition (nothing is read for a caller who is not an active mechanic).
--   * coalesce(expires_at > now() AND expertise AND radius, false): estimated one half as
--     a whole, instead of the share of all requests ever created that expire in the future
--     (it shrinks as history grows) times st_dwithin's selectivity (1 in 10,000).
-- Customers' own requests (first two arms) are found by their indexes, as before.
ALTER POLICY session_requests_select_authenticated ON autodoctor.session_requests
    USING (
        customer_id = (SELECT auth.uid())
        OR mechanic_id = (SELECT auth.uid())
        OR (
            coalesce(status = 'pending', false)
            AND market = (SELECT m.market FROM autodoctor.mechanics m
                           WHERE m.user_id = (SELECT auth.uid()) AND m.active)
            AND coalesce(
                expires_at > now()
                AND session_type = ANY (coalesce((SELECT m.expertise FROM autodoctor.mechanics m
                                                   WHERE m.user_id = (SELECT auth.uid()) AND m.active),
                                                  '{}'))
                AND (location IS NULL
                     OR (SELECT m.location FROM autodoctor.mechanics m
                          WHERE m.user_id = (SELECT auth.uid())) IS NULL
                     OR st_dwithin(
                            location,
                            (SELECT m.location FROM autodoctor.mechanics m
                              WHERE m.user_id = (SELECT auth.uid())),
                            (SELECT (m.service_radius_km * 1000)::double precision
                               FROM autodoctor.mechanics m WHERE m.user_id = (SELECT auth.uid())))),
                false)
        )
    );

COMMIT;

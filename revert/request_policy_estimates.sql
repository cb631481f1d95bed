-- Revert autodoctor:request_policy_estimates from pg

BEGIN;

-- PostGIS's schema on the search path while the policy is created (see the deploy script).
DO $bind$
BEGIN
    PERFORM pg_catalog.set_config('search_path', (
        SELECT pg_catalog.quote_ident(n.nspname)
          FROM pg_catalog.pg_extension e
          JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'postgis'), true);
END
$bind$;

-- Back to the policy as released (change session_requests).
ALTER POLICY session_requests_select_authenticated ON autodoctor.session_requests
    USING (
        customer_id = (SELECT auth.uid())
        OR mechanic_id = (SELECT auth.uid())
        OR (
            status = 'pending'
            AND expires_at > now()
            AND market = (SELECT m.market FROM autodoctor.mechanics m
                           WHERE m.user_id = (SELECT auth.uid()) AND m.active)
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
                           FROM autodoctor.mechanics m WHERE m.user_id = (SELECT auth.uid()))))
        )
    );

COMMIT;

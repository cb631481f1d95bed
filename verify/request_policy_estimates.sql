-- Verify autodoctor:request_policy_estimates on pg

BEGIN;

DO $$
DECLARE
    v_qual text := (SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid)
                      FROM pg_catalog.pg_policy p
                     WHERE p.polrelid = 'autodoctor.session_requests'::regclass
                       AND p.polname = 'session_requests_select_authenticated');
BEGIN
    ASSERT v_qual IS NOT NULL, 'session_requests_select_authenticated must exist';
    -- The open-request arm tests the predicate of session_requests_pending_market_idx.
    ASSERT position('COALESCE((status = ''pending''::autodoctor.session_request_status), false)'
                    IN v_qual) > 0,
        'session_requests_select_authenticated must test the pending index''s predicate';
    ASSERT position('st_dwithin' IN v_qual) > 0,
        'session_requests_select_authenticated must still check the service radius';
END
$$;

ROLLBACK;

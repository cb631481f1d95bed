-- Verify autodoctor:event_policy_own_ids on pg

BEGIN;

DO $$
DECLARE
    v_qual text := (SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid)
                      FROM pg_catalog.pg_policy p
                     WHERE p.polrelid = 'autodoctor.session_events'::regclass
                       AND p.polname = 'session_events_select_authenticated');
BEGIN
    ASSERT v_qual IS NOT NULL, 'session_events_select_authenticated must exist';
    ASSERT position('request_id = ANY (ARRAY(' IN v_qual) > 0
       AND position('session_id = ANY (ARRAY(' IN v_qual) > 0
       AND position('EXISTS' IN v_qual) = 0,
        'session_events_select_authenticated must look the caller''s ids up once, not per event';
END
$$;

ROLLBACK;

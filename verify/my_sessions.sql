-- Verify autodoctor:my_sessions on pg

BEGIN;

SELECT id, my_role, status, session_type, plan_code, request_id, intake_id, mechanic_id,
       customer_user_id, created_at, started_at, ended_at, duration_minutes
  FROM autodoctor.my_sessions WHERE FALSE;

DO $$
BEGIN
    ASSERT (SELECT 'security_invoker=true' = ANY (reloptions) FROM pg_catalog.pg_class
             WHERE oid = 'autodoctor.my_sessions'::regclass),
        'my_sessions must be security_invoker';
END
$$;

ROLLBACK;

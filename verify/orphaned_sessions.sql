-- Verify autodoctor:orphaned_sessions on pg

BEGIN;

SELECT id, created_at, status, session_type, plan_code, customer_user_id, intake_id,
       pending_request_id, pending_request_expires_at, age
  FROM autodoctor.orphaned_sessions WHERE FALSE;

DO $$
BEGIN
    ASSERT (SELECT 'security_invoker=true' = ANY (reloptions) FROM pg_catalog.pg_class
             WHERE oid = 'autodoctor.orphaned_sessions'::regclass),
        'orphaned_sessions must be security_invoker';
    ASSERT NOT has_table_privilege('authenticated', 'autodoctor.orphaned_sessions', 'select'),
        'authenticated must not read orphaned_sessions';
END
$$;

ROLLBACK;

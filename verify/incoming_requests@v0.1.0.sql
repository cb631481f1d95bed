-- Verify autodoctor:incoming_requests on pg

BEGIN;

SELECT id, created_at, expires_at, session_type, plan_code, customer_name, notes,
       intake_id, distance_km
  FROM autodoctor.incoming_requests WHERE FALSE;

DO $$
BEGIN
    ASSERT (SELECT 'security_invoker=true' = ANY (reloptions) FROM pg_catalog.pg_class
             WHERE oid = 'autodoctor.incoming_requests'::regclass),
        'incoming_requests must be security_invoker';
END
$$;

ROLLBACK;

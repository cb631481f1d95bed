-- Verify autodoctor:session_requests on pg

BEGIN;

SELECT id, created_at, updated_at, customer_id, mechanic_id, session_type, plan_code,
       status, customer_name, customer_email, notes, accepted_at, notification_sent_at,
       metadata, intake_id, expires_at, session_id, idempotency_key, location,
       cancelled_at, expired_at
  FROM autodoctor.session_requests WHERE FALSE;

DO $$
BEGIN
    ASSERT (SELECT relrowsecurity FROM pg_catalog.pg_class
             WHERE oid = 'autodoctor.session_requests'::regclass),
        'row-level security must be enabled on session_requests';
END
$$;

ROLLBACK;

-- Deploy autodoctor:orphaned_sessions to pg
-- requires: sessions
-- requires: session_requests

BEGIN;

-- The service's repair queue: active sessions without a mechanic, oldest first, with the
-- pending request a conversion gave them (if any). security_invoker.
CREATE OR REPLACE VIEW autodoctor.orphaned_sessions
WITH (security_invoker = true)
AS
SELECT s.id,
       s.created_at,
       s.status,
       s.type AS session_type,
       s.plan AS plan_code,
       s.customer_user_id,
       s.intake_id,
       r.id AS pending_request_id,
       r.expires_at AS pending_request_expires_at,
       now() - s.created_at AS age
  FROM autodoctor.sessions s
  LEFT JOIN autodoctor.session_requests r ON r.session_id = s.id AND r.status = 'pending'
 WHERE s.mechanic_id IS NULL AND s.status IN ('pending', 'live')
 ORDER BY s.created_at;

COMMENT ON VIEW autodoctor.orphaned_sessions IS
    'Service dashboard: sessions in pending or live without a mechanic, oldest first, with '
    'their pending request if converted.';

GRANT SELECT ON autodoctor.orphaned_sessions TO service_role;

COMMIT;

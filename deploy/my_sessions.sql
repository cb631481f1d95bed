-- Deploy autodoctor:my_sessions to pg
-- requires: sessions

BEGIN;

-- Both sides' dashboard: the caller's sessions, newest first, with the caller's part in
-- each. security_invoker, so row-level security decides what the caller sees.
CREATE OR REPLACE VIEW autodoctor.my_sessions
WITH (security_invoker = true)
AS
SELECT s.id,
       CASE WHEN s.mechanic_id = (SELECT auth.uid()) THEN 'mechanic' ELSE 'customer' END AS my_role,
       s.status,
       s.type AS session_type,
       s.plan AS plan_code,
       s.request_id,
       s.intake_id,
       s.mechanic_id,
       s.customer_user_id,
       s.created_at,
       s.started_at,
       s.ended_at,
       s.duration_minutes
  FROM autodoctor.sessions s
 WHERE s.customer_user_id = (SELECT auth.uid()) OR s.mechanic_id = (SELECT auth.uid())
 ORDER BY s.created_at DESC;

COMMENT ON VIEW autodoctor.my_sessions IS
    'Dashboard for customers and mechanics: the calling user''s sessions, newest first.';

GRANT SELECT ON autodoctor.my_sessions TO authenticated;

COMMIT;

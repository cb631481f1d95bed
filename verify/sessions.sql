-- Verify autodoctor:sessions on pg

BEGIN;

SELECT id, created_at, updated_at, mechanic_id, customer_user_id, customer_email, plan,
       type, status, stripe_session_id, intake_id, scheduled_start, scheduled_end,
       scheduled_for, started_at, ended_at, duration_minutes, metadata, request_id,
       cancel_reason
  FROM autodoctor.sessions WHERE FALSE;

ROLLBACK;

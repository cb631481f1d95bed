-- Verify autodoctor:session_events on pg

BEGIN;

SELECT id, at, txid, event, request_id, session_id, actor_id, from_status, to_status,
       session_type, plan_code, detail
  FROM autodoctor.session_events WHERE FALSE;

DO $$
BEGIN
    ASSERT to_regprocedure('autodoctor._log_event(text, uuid, uuid, uuid, text, text, autodoctor.session_type, text, jsonb)') IS NOT NULL,
        '_log_event must exist';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor._log_event(text, uuid, uuid, uuid, text, text, autodoctor.session_type, text, jsonb)', 'execute'),
        '_log_event must not be executable by authenticated';
END
$$;

ROLLBACK;

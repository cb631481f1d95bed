-- Revert autodoctor:log_event_plpgsql from pg

BEGIN;

-- _log_event as change session_events created it (a SQL function).
CREATE OR REPLACE FUNCTION autodoctor._log_event(
    event text,
    request_id uuid,
    session_id uuid,
    actor_id uuid,
    from_status text,
    to_status text,
    session_type autodoctor.session_type,
    plan_code text,
    detail jsonb DEFAULT '{}'::jsonb
)
RETURNS bigint
LANGUAGE sql
VOLATILE
SET search_path = ''
AS $$
    INSERT INTO autodoctor.session_events
        (event, request_id, session_id, actor_id, from_status, to_status,
         session_type, plan_code, detail)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, '{}'::jsonb))
    RETURNING id;
$$;

COMMENT ON FUNCTION autodoctor._log_event(text, uuid, uuid, uuid, text, text, autodoctor.session_type, text, jsonb) IS
    'Private: appends an event to session_events; its trigger broadcasts it.';
REVOKE ALL ON FUNCTION autodoctor._log_event(text, uuid, uuid, uuid, text, text, autodoctor.session_type, text, jsonb) FROM PUBLIC;

COMMIT;

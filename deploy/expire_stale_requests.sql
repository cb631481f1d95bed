-- Deploy autodoctor:expire_stale_requests to pg
-- requires: session_requests
-- requires: session_fsm
-- requires: session_events

BEGIN;

-- expire_stale_requests: every pending request past its expires_at becomes expired.
-- Requests are taken with SKIP LOCKED (an accept in flight decides that one; accept
-- itself refuses an expired request). A converted orphan's session is cancelled with its
-- request, so it is not left with neither a mechanic nor a request.
CREATE OR REPLACE FUNCTION autodoctor.expire_stale_requests()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_request autodoctor.session_requests;
    v_session autodoctor.sessions;
    v_from autodoctor.session_status;
    v_expired integer := 0;
BEGIN
    FOR v_request IN
        WITH due AS (
            SELECT r.id
              FROM autodoctor.session_requests r
             WHERE r.status = 'pending' AND r.expires_at <= now()
             ORDER BY r.expires_at
               FOR UPDATE SKIP LOCKED
        )
        UPDATE autodoctor.session_requests r
           SET status = 'expired', expired_at = now(), updated_at = now()
          FROM due
         WHERE r.id = due.id
        RETURNING r.*
    LOOP
        PERFORM autodoctor._log_event('request_expired', v_request.id, v_request.session_id, NULL,
                                      'pending', 'expired', v_request.session_type, v_request.plan_code);
        IF v_request.session_id IS NOT NULL THEN
            SELECT s.status INTO v_from FROM autodoctor.sessions s WHERE s.id = v_request.session_id;
            UPDATE autodoctor.sessions s
               SET status = 'cancelled', cancel_reason = 'request_expired', ended_at = now(),
                   updated_at = now()
             WHERE s.id = v_request.session_id
               AND s.mechanic_id IS NULL AND s.status IN ('pending', 'live')
            RETURNING * INTO v_session;
            IF FOUND THEN
                PERFORM autodoctor._log_event('orphan_cancelled', v_request.id, v_session.id, NULL,
                                              v_from::text, 'cancelled', v_session.type, v_session.plan,
                                              jsonb_build_object('reason', 'request_expired'));
            END IF;
        END IF;
        v_expired := v_expired + 1;
    END LOOP;
    RETURN v_expired;
END
$$;

COMMENT ON FUNCTION autodoctor.expire_stale_requests() IS
    'Service role: expires every pending request past expires_at (and cancels a converted '
    'orphan''s session with it). Returns the number expired.';
REVOKE ALL ON FUNCTION autodoctor.expire_stale_requests() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.expire_stale_requests() TO service_role;

COMMIT;

-- Deploy autodoctor:cancel_orphaned_sessions to pg
-- requires: orphan_dispatch

BEGIN;

-- cancel_orphaned_sessions: repair option 1, stale orphans are cancelled, never deleted.
-- Each orphan older than older_than is cancelled with reason 'orphaned', with its
-- converted request if it has one. Orphan and request are taken with SKIP LOCKED, so
-- one held by an accept or a claim in flight is left to it.
CREATE OR REPLACE FUNCTION autodoctor.cancel_orphaned_sessions(
    older_than interval DEFAULT interval '1 day'
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_orphan autodoctor.sessions;
    v_request autodoctor.session_requests;
    v_cancelled integer := 0;
BEGIN
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'older_than must be a non-negative interval',
            DETAIL = 'invalid_interval';
    END IF;

    FOR v_orphan IN
        SELECT s.*
          FROM autodoctor.sessions s
         WHERE s.mechanic_id IS NULL AND s.status IN ('pending', 'live')
           AND s.created_at < now() - older_than
         ORDER BY s.created_at, s.id
           FOR UPDATE OF s SKIP LOCKED
    LOOP
        v_request := NULL;
        SELECT r.* INTO v_request
          FROM autodoctor.session_requests r
         WHERE r.session_id = v_orphan.id AND r.status = 'pending'
           FOR UPDATE SKIP LOCKED;
        IF v_request.id IS NULL AND EXISTS (
            SELECT 1 FROM autodoctor.session_requests r
             WHERE r.session_id = v_orphan.id AND r.status = 'pending') THEN
            CONTINUE;
        END IF;
        IF v_request.id IS NOT NULL THEN
            UPDATE autodoctor.session_requests r
               SET status = 'cancelled', cancelled_at = now(), updated_at = now()
             WHERE r.id = v_request.id;
            PERFORM autodoctor._log_event('request_cancelled', v_request.id, v_orphan.id, NULL,
                                          'pending', 'cancelled', v_request.session_type,
                                          v_request.plan_code,
                                          jsonb_build_object('reason', 'orphaned'));
        END IF;
        UPDATE autodoctor.sessions s
           SET status = 'cancelled', cancel_reason = 'orphaned', ended_at = now(), updated_at = now()
         WHERE s.id = v_orphan.id;
        PERFORM autodoctor._log_event('orphan_cancelled', v_request.id, v_orphan.id, NULL,
                                      v_orphan.status::text, 'cancelled', v_orphan.type, v_orphan.plan,
                                      jsonb_build_object('reason', 'orphaned', 'older_than', older_than::text));
        v_cancelled := v_cancelled + 1;
    END LOOP;
    RETURN v_cancelled;
END
$$;

COMMENT ON FUNCTION autodoctor.cancel_orphaned_sessions(interval) IS
    'Service role: cancels (never deletes) orphaned sessions older than older_than, with '
    'their converted requests. Returns the number cancelled. Errors: 22023 invalid_interval.';
REVOKE ALL ON FUNCTION autodoctor.cancel_orphaned_sessions(interval) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.cancel_orphaned_sessions(interval) TO service_role;

COMMIT;

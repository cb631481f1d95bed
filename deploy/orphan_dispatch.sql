-- Deploy autodoctor:orphan_dispatch to pg
-- requires: orphan_dispatch@v0.1.0
-- requires: sessions
-- requires: session_requests
-- requires: mechanic_load
-- requires: session_fsm
-- requires: session_events
-- requires: notification_outbox

BEGIN;

-- _assign_orphan: gives an orphaned session (no mechanic, pending or live) its mechanic.
-- A pending session starts waiting, a live one stays live. The pending request that a
-- conversion created for it (caller has locked it) is accepted and linked, so "a request
-- is accepted iff a session has it" holds. Returns NULL if the session is no longer an
-- orphan. The load trigger refuses a mechanic beyond capacity (PT409 capacity_reached).
CREATE OR REPLACE FUNCTION autodoctor._assign_orphan(
    session_id uuid,
    mechanic_id uuid,
    request_id uuid,
    via text,
    actor_id uuid
)
RETURNS autodoctor.sessions
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_session autodoctor.sessions;
    v_from autodoctor.session_status;
    v_original uuid;
    v_request_id uuid := _assign_orphan.request_id;
    v_cancelled autodoctor.session_requests;
BEGIN
    SELECT s.status, s.request_id INTO v_from, v_original
      FROM autodoctor.sessions s WHERE s.id = _assign_orphan.session_id;
    IF v_request_id IS NOT NULL AND v_original IS NOT NULL AND v_original <> v_request_id THEN
        -- A legacy orphan that still points at the request it was born of keeps it; the
        -- request a conversion made for it is no longer needed, and is cancelled (logged)
        -- rather than accepted with no session to show for it.
        UPDATE autodoctor.session_requests r
           SET status = 'cancelled', cancelled_at = now(), updated_at = now()
         WHERE r.id = v_request_id AND r.status = 'pending'
        RETURNING * INTO v_cancelled;
        IF FOUND THEN
            PERFORM autodoctor._log_event('request_cancelled', v_cancelled.id, _assign_orphan.session_id,
                                          _assign_orphan.actor_id, 'pending', 'cancelled',
                                          v_cancelled.session_type, v_cancelled.plan_code,
                                          jsonb_build_object('reason', 'session_keeps_its_request'));
        END IF;
        v_request_id := NULL;
    ELSIF v_request_id IS NOT NULL THEN
        UPDATE autodoctor.session_requests r
           SET status = 'accepted', mechanic_id = _assign_orphan.mechanic_id,
               accepted_at = now(), updated_at = now()
         WHERE r.id = v_request_id AND r.status = 'pending';
    END IF;
    UPDATE autodoctor.sessions s
       SET mechanic_id = _assign_orphan.mechanic_id,
           request_id = coalesce(s.request_id, v_request_id),
           status = CASE WHEN s.status = 'pending' THEN 'waiting'::autodoctor.session_status
                         ELSE s.status END,
           updated_at = now()
     WHERE s.id = _assign_orphan.session_id
       AND s.mechanic_id IS NULL
       AND s.status IN ('pending', 'live')
    RETURNING * INTO v_session;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM autodoctor._log_event('session_assigned', coalesce(v_request_id, v_original), v_session.id,
                                  _assign_orphan.actor_id, v_from::text, v_session.status::text,
                                  v_session.type, v_session.plan,
                                  jsonb_build_object('via', _assign_orphan.via,
                                                     'mechanic_id', _assign_orphan.mechanic_id));
    RETURN v_session;
END
$$;

COMMENT ON FUNCTION autodoctor._assign_orphan(uuid, uuid, uuid, text, uuid) IS
    'Private: assigns a mechanic to an orphaned session (pending -> waiting, live stays live), '
    'accepting its converted request; NULL when it is no longer an orphan.';
REVOKE ALL ON FUNCTION autodoctor._assign_orphan(uuid, uuid, uuid, text, uuid) FROM PUBLIC;

COMMIT;

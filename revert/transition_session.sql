-- Deploy autodoctor:transition_session to pg
-- requires: session_fsm
-- requires: session_events
-- requires: helpers

BEGIN;

-- transition_session: a party moves a session through the state machine.
-- The session's mechanic moves the work on (scheduled, waiting, live, completed); its
-- customer may cancel it before it is live. The row is locked, so two concurrent moves
-- are applied one after the other and the second is checked against the first.
CREATE OR REPLACE FUNCTION autodoctor.transition_session(
    session_id uuid,
    to_status autodoctor.session_status
)
RETURNS autodoctor.sessions
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_uid uuid := autodoctor._caller();
    v_session autodoctor.sessions;
    v_from autodoctor.session_status;
    v_is_mechanic boolean;
    v_request_id uuid;
BEGIN
    IF transition_session.to_status IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'to_status is required', DETAIL = 'invalid_status';
    END IF;

    -- Lock order shared by every function: a request before its session. A converted
    -- orphan's pending request is cancelled with its session.
    SELECT r.id INTO v_request_id
      FROM autodoctor.session_requests r
     WHERE r.session_id = transition_session.session_id AND r.status = 'pending'
       FOR UPDATE;

    SELECT * INTO v_session
      FROM autodoctor.sessions s
     WHERE s.id = transition_session.session_id
       FOR UPDATE;
    -- Someone else's session gets the same answer as a missing one.
    IF NOT FOUND OR (v_session.mechanic_id IS DISTINCT FROM v_uid
                     AND v_session.customer_user_id IS DISTINCT FROM v_uid) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PT404',
            MESSAGE = 'session not found',
            DETAIL = 'session_not_found',
            HINT = 'Check the id; list your sessions in autodoctor.my_sessions.';
    END IF;
    -- A conversion may have committed a pending request for it while we waited for the
    -- session's lock: take it too, never waiting now (that would invert the lock order).
    IF v_request_id IS NULL AND transition_session.to_status = 'cancelled' THEN
        SELECT r.id INTO v_request_id
          FROM autodoctor.session_requests r
         WHERE r.session_id = v_session.id AND r.status = 'pending'
           FOR UPDATE SKIP LOCKED;
        IF v_request_id IS NULL AND EXISTS (
            SELECT 1 FROM autodoctor.session_requests r
             WHERE r.session_id = v_session.id AND r.status = 'pending') THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT409',
                MESSAGE = 'the session is being assigned right now',
                DETAIL = 'session_busy',
                HINT = 'A mechanic is accepting its request; try again in a moment.';
        END IF;
    END IF;
    v_from := v_session.status;
    IF NOT autodoctor._transition_allowed(v_from, transition_session.to_status) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PT409',
            MESSAGE = format('a session cannot go from %s to %s', v_from, transition_session.to_status),
            DETAIL = 'invalid_transition',
            HINT = 'Allowed: pending->scheduled|waiting|cancelled, scheduled->waiting|cancelled, '
                || 'waiting->live|cancelled, live->completed|cancelled.';
    END IF;

    v_is_mechanic := v_session.mechanic_id = v_uid;
    IF NOT (
        (v_is_mechanic AND transition_session.to_status IN ('scheduled', 'waiting', 'live', 'completed'))
        OR (v_session.customer_user_id = v_uid AND transition_session.to_status = 'cancelled'
            AND v_from IN ('pending', 'scheduled', 'waiting'))
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('this move (%s -> %s) is not yours to make', v_from, transition_session.to_status),
            DETAIL = 'not_your_transition',
            HINT = 'The mechanic starts and completes a session; the customer may cancel it before it is live.';
    END IF;

    UPDATE autodoctor.sessions s
       SET status = transition_session.to_status,
           started_at = CASE WHEN transition_session.to_status = 'live' THEN now() ELSE s.started_at END,
           ended_at = CASE WHEN transition_session.to_status IN ('completed', 'cancelled') THEN now()
                           ELSE s.ended_at END,
           duration_minutes = CASE WHEN transition_session.to_status = 'completed' AND s.started_at IS NOT NULL
                                   THEN ceil(extract(epoch FROM now() - s.started_at) / 60)::integer
                                   ELSE s.duration_minutes END,
           cancel_reason = CASE WHEN transition_session.to_status = 'cancelled'
                                THEN 'cancelled_by_customer' ELSE s.cancel_reason END,
           updated_at = now()
     WHERE s.id = v_session.id
    RETURNING * INTO v_session;

    PERFORM autodoctor._log_event('session_status_changed', v_session.request_id, v_session.id, v_uid,
                                  v_from::text, v_session.status::text, v_session.type, v_session.plan);

    IF v_session.status = 'cancelled' AND v_request_id IS NOT NULL THEN
        UPDATE autodoctor.session_requests r
           SET status = 'cancelled', cancelled_at = now(), updated_at = now()
         WHERE r.id = v_request_id AND r.status = 'pending';
        IF FOUND THEN
            PERFORM autodoctor._log_event('request_cancelled', v_request_id, v_session.id, v_uid,
                                          'pending', 'cancelled', v_session.type, v_session.plan,
                                          jsonb_build_object('reason', 'session_cancelled'));
        END IF;
    END IF;
    RETURN v_session;
END
$$;

COMMENT ON FUNCTION autodoctor.transition_session(uuid, autodoctor.session_status) IS
    'A party moves a session through the state machine: the mechanic to scheduled, waiting, '
    'live, completed; the customer to cancelled before live. Sets started_at, ended_at, '
    'duration_minutes. Errors: 42501 not_authenticated, not_your_transition; PT404 '
    'session_not_found; PT409 invalid_transition, session_busy; 22023 invalid_status.';
REVOKE ALL ON FUNCTION autodoctor.transition_session(uuid, autodoctor.session_status) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.transition_session(uuid, autodoctor.session_status) TO authenticated;

COMMIT;

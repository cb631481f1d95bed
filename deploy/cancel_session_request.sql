-- Deploy autodoctor:cancel_session_request to pg
-- requires: cancel_session_request@v0.1.0
-- requires: session_requests
-- requires: sessions
-- requires: session_events
-- requires: helpers

BEGIN;

-- cancel_session_request: the owning customer withdraws a pending request.
-- One guarded UPDATE (owner, pending): racing an accept, exactly one of the two wins. A
-- converted legacy orphan's session is cancelled with its request, so it is not left
-- without a mechanic and without a request.
CREATE OR REPLACE FUNCTION autodoctor.cancel_session_request(
    request_id uuid
)
RETURNS autodoctor.session_requests
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_uid uuid := autodoctor._caller();
    v_request autodoctor.session_requests;
    v_session autodoctor.sessions;
    v_from autodoctor.session_status;
BEGIN
    UPDATE autodoctor.session_requests r
       SET status = 'cancelled',
           cancelled_at = now(),
           updated_at = now()
     WHERE r.id = cancel_session_request.request_id
       AND r.customer_id = v_uid
       AND r.status = 'pending'
    RETURNING * INTO v_request;

    IF NOT FOUND THEN
        SELECT * INTO v_request FROM autodoctor.session_requests r
         WHERE r.id = cancel_session_request.request_id;
        -- Another customer's request gets the same answer as a missing one.
        IF NOT FOUND OR v_request.customer_id <> v_uid THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT404',
                MESSAGE = 'session request not found',
                DETAIL = 'request_not_found',
                HINT = 'Check the id; customers can cancel only their own requests.';
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = 'PT409',
            MESSAGE = format('session request is %s, no longer pending', v_request.status),
            DETAIL = 'request_not_pending',
            HINT = 'An accepted request is ended by cancelling its session instead.';
    END IF;

    -- A converted legacy orphan that is live: the customer may not end a live session
    -- (transition_session refuses live -> cancelled to them too). The request's UPDATE
    -- above is undone with the error.
    IF v_request.session_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM autodoctor.sessions s
         WHERE s.id = v_request.session_id AND s.status = 'live') THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'this move (live -> cancelled) is not yours to make',
            DETAIL = 'not_your_transition',
            HINT = 'The request belongs to a live session; the mechanic who takes it completes it.';
    END IF;

    PERFORM autodoctor._log_event('request_cancelled', v_request.id, v_request.session_id, v_uid,
                                  'pending', 'cancelled', v_request.session_type,
                                  v_request.plan_code);

    IF v_request.session_id IS NOT NULL THEN
        SELECT s.status INTO v_from FROM autodoctor.sessions s WHERE s.id = v_request.session_id;
        UPDATE autodoctor.sessions s
           SET status = 'cancelled',
               cancel_reason = 'request_cancelled',
               ended_at = now(),
               updated_at = now()
         WHERE s.id = v_request.session_id
           AND s.mechanic_id IS NULL
           AND s.status IN ('pending', 'live')
        RETURNING * INTO v_session;
        IF FOUND THEN
            PERFORM autodoctor._log_event('orphan_cancelled', v_request.id, v_session.id, v_uid,
                                          v_from::text, 'cancelled', v_session.type, v_session.plan,
                                          jsonb_build_object('reason', 'request_cancelled'));
        END IF;
    END IF;

    RETURN v_request;
END
$$;

COMMENT ON FUNCTION autodoctor.cancel_session_request(uuid) IS
    'The calling customer cancels their pending request. Errors: 42501 not_authenticated, '
    'not_your_transition (the request of a live session); PT404 request_not_found (also for '
    'another customer''s request); PT409 request_not_pending.';
REVOKE ALL ON FUNCTION autodoctor.cancel_session_request(uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.cancel_session_request(uuid) TO authenticated;

COMMIT;

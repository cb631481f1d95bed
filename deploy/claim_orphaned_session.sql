-- Deploy autodoctor:claim_orphaned_session to pg
-- requires: claim_orphaned_session@v0.1.0
-- requires: orphan_dispatch
-- requires: helpers
-- requires: mechanic_guards

BEGIN;

-- claim_orphaned_session: a mechanic takes an orphaned session directly.
-- Locks the converted request pointing at it (if any) before the session, in the lock
-- order every function shares, so a concurrent accept of that request and this claim
-- serialise and exactly one of them assigns the session.
CREATE OR REPLACE FUNCTION autodoctor.claim_orphaned_session(
    session_id uuid
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
    v_mechanic autodoctor.mechanics;
    v_request_id uuid;
    v_session autodoctor.sessions;
    v_location autodoctor.intakes.location%TYPE;
BEGIN
    v_mechanic := autodoctor._require_mechanic(v_uid, 'can claim a session');

    SELECT r.id INTO v_request_id
      FROM autodoctor.session_requests r
     WHERE r.session_id = claim_orphaned_session.session_id AND r.status = 'pending'
       FOR UPDATE;

    SELECT s.* INTO v_session
      FROM autodoctor.sessions s
     WHERE s.id = claim_orphaned_session.session_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PT404',
            MESSAGE = 'session not found',
            DETAIL = 'session_not_found';
    END IF;
    IF v_session.mechanic_id IS NOT NULL OR v_session.status NOT IN ('pending', 'live') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PT409',
            MESSAGE = 'session is not an orphan any more',
            DETAIL = 'session_not_claimable',
            HINT = 'Another mechanic took it, or it was closed.';
    END IF;
    -- A conversion may have committed a pending request for it while we waited for the
    -- session's lock: take it too, but never wait for it now (that would invert the lock
    -- order); if someone else holds it, they are deciding this session.
    IF v_request_id IS NULL THEN
        SELECT r.id INTO v_request_id
          FROM autodoctor.session_requests r
         WHERE r.session_id = v_session.id AND r.status = 'pending'
           FOR UPDATE SKIP LOCKED;
        IF v_request_id IS NULL AND EXISTS (
            SELECT 1 FROM autodoctor.session_requests r
             WHERE r.session_id = v_session.id AND r.status = 'pending') THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT409',
                MESSAGE = 'session is being assigned by someone else',
                DETAIL = 'session_not_claimable',
                HINT = 'Another mechanic is accepting its request right now.';
        END IF;
    END IF;
    -- Its converted request ran out: the expiry sweep cancels such an orphan with its
    -- request; until it runs, claiming is refused as accepting that request is.
    IF v_request_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM autodoctor.session_requests r
         WHERE r.id = v_request_id AND r.expires_at <= now()) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PT409',
            MESSAGE = 'the orphan''s request has expired',
            DETAIL = 'request_expired',
            HINT = 'Maintenance closes it (run_maintenance); the customer may ask again.';
    END IF;
    IF v_session.customer_user_id = v_uid THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'a mechanic cannot claim their own session',
            DETAIL = 'own_request';
    END IF;
    -- The shared guard: not_qualified, then out_of_service_area (the orphan's intake
    -- location), with the same HINTs as accept_session_request.
    SELECT i.location INTO v_location FROM autodoctor.intakes i WHERE i.id = v_session.intake_id;
    PERFORM autodoctor._require_can_serve(v_mechanic, v_session.type, v_session.market,
                                          v_location, 'session');

    v_session := autodoctor._assign_orphan(v_session.id, v_uid, v_request_id, 'claim', v_uid);
    RETURN v_session;
END
$$;

COMMENT ON FUNCTION autodoctor.claim_orphaned_session(uuid) IS
    'The calling mechanic takes an orphaned session (pending -> waiting, live stays live). '
    'Errors: 42501 not_authenticated, not_mechanic, not_qualified, out_of_service_area, '
    'own_request; PT404 session_not_found; PT409 session_not_claimable, request_expired, '
    'capacity_reached.';
REVOKE ALL ON FUNCTION autodoctor.claim_orphaned_session(uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.claim_orphaned_session(uuid) TO authenticated;

COMMIT;

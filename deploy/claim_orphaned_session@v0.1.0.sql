-- Deploy autodoctor:claim_orphaned_session to pg
-- requires: orphan_dispatch
-- requires: helpers

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
    SELECT * INTO v_mechanic FROM autodoctor.mechanics m WHERE m.user_id = v_uid;
    IF NOT FOUND OR NOT v_mechanic.active THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'only an active mechanic can claim a session',
            DETAIL = 'not_mechanic',
            HINT = 'Mechanics are registered by the service with register_mechanic.';
    END IF;

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
    IF v_session.customer_user_id = v_uid THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'a mechanic cannot claim their own session',
            DETAIL = 'own_request';
    END IF;
    IF NOT (v_session.type = ANY (v_mechanic.expertise)) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('this mechanic does not take %s sessions', v_session.type),
            DETAIL = 'not_qualified';
    END IF;
    SELECT i.location INTO v_location FROM autodoctor.intakes i WHERE i.id = v_session.intake_id;
    IF v_session.market <> v_mechanic.market OR (v_location IS NOT NULL AND v_mechanic.location IS NOT NULL
       AND NOT autodoctor._within(v_location, v_mechanic.location,
                                  (v_mechanic.service_radius_km * 1000)::double precision)) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'session is outside this mechanic''s service area',
            DETAIL = 'out_of_service_area';
    END IF;

    v_session := autodoctor._assign_orphan(v_session.id, v_uid, v_request_id, 'claim', v_uid);
    RETURN v_session;
END
$$;

COMMENT ON FUNCTION autodoctor.claim_orphaned_session(uuid) IS
    'The calling mechanic takes an orphaned session (pending -> waiting, live stays live). '
    'Errors: 42501 not_authenticated, not_mechanic, not_qualified, out_of_service_area, '
    'own_request; PT404 session_not_found; PT409 session_not_claimable, capacity_reached.';
REVOKE ALL ON FUNCTION autodoctor.claim_orphaned_session(uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.claim_orphaned_session(uuid) TO authenticated;

COMMIT;

-- Deploy autodoctor:accept_session_request to pg
-- requires: session_requests
-- requires: sessions
-- requires: session_events
-- requires: helpers
-- requires: mechanic_load
-- requires: session_fsm
-- requires: accept_session_request@v0.1.0
-- requires: mechanic_guards
-- requires: time_ordered_ids

BEGIN;

-- accept_session_request: a mechanic accepts a pending request; exactly one wins.
-- One guarded UPDATE moves the request pending -> accepted: concurrent accepts of one
-- request queue on its row lock and every loser re-checks the guard and gets PT409. The
-- session is created (or, for a converted legacy orphan, assigned) in the same
-- transaction, so "accepted iff one session" always holds; the load trigger on sessions
-- then takes the mechanic's row lock and refuses one session beyond their capacity.
-- Lock order, shared by every function: request, then session, then mechanic.
CREATE OR REPLACE FUNCTION autodoctor.accept_session_request(
    request_id uuid
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
    v_request autodoctor.session_requests;
    v_session autodoctor.sessions;
    v_new_session_id uuid := autodoctor._uuid_v7();
BEGIN
    v_mechanic := autodoctor._require_mechanic(v_uid, 'can accept a session request');

    UPDATE autodoctor.session_requests r
       SET status = 'accepted',
           mechanic_id = v_uid,
           accepted_at = now(),
           updated_at = now(),
           session_id = coalesce(r.session_id, v_new_session_id)
     WHERE r.id = accept_session_request.request_id
       AND r.status = 'pending'
       AND r.expires_at > now()
       AND r.customer_id <> v_uid
       AND r.market = v_mechanic.market
       AND r.session_type = ANY (v_mechanic.expertise)
       AND (r.location IS NULL OR v_mechanic.location IS NULL
            OR autodoctor._within(r.location, v_mechanic.location,
                                (v_mechanic.service_radius_km * 1000)::double precision))
    RETURNING * INTO v_request;

    IF NOT FOUND THEN
        -- The guard failed: say why, most specific reason first. Nothing was written.
        SELECT * INTO v_request FROM autodoctor.session_requests r
         WHERE r.id = accept_session_request.request_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT404',
                MESSAGE = 'session request not found',
                DETAIL = 'request_not_found',
                HINT = 'Check the id; list acceptable requests in autodoctor.incoming_requests.';
        ELSIF v_request.customer_id = v_uid THEN
            RAISE EXCEPTION USING
                ERRCODE = '42501',
                MESSAGE = 'a mechanic cannot accept their own request',
                DETAIL = 'own_request';
        ELSIF NOT (v_request.session_type = ANY (v_mechanic.expertise)) THEN
            -- Not qualified (the shared guard raises not_qualified with its HINT).
            PERFORM autodoctor._require_can_serve(v_mechanic, v_request.session_type,
                                                  v_request.market, v_request.location,
                                                  'session request');
        ELSIF v_request.status = 'expired'
              OR (v_request.status = 'pending' AND v_request.expires_at <= now()) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT409',
                MESSAGE = 'session request has expired',
                DETAIL = 'request_expired',
                HINT = 'The customer can create a new request.';
        ELSIF v_request.status = 'pending' THEN
            -- Pending, unexpired, not theirs, and the mechanic is qualified: the market or
            -- the radius failed (the shared guard raises out_of_service_area).
            PERFORM autodoctor._require_can_serve(v_mechanic, v_request.session_type,
                                                  v_request.market, v_request.location,
                                                  'session request');
        END IF;
        -- No longer pending (or it changed between the UPDATE and the read above).
        RAISE EXCEPTION USING
            ERRCODE = 'PT409',
            MESSAGE = 'session request is no longer pending',
            DETAIL = 'request_not_pending',
            HINT = 'Refresh the incoming requests; another mechanic may have accepted it.';
    END IF;

    IF v_request.session_id = v_new_session_id THEN
        INSERT INTO autodoctor.sessions
            (id, mechanic_id, customer_user_id, customer_email, plan, type, status,
             intake_id, scheduled_start, scheduled_for, request_id, market, metadata)
        VALUES
            (v_new_session_id, v_uid, v_request.customer_id, v_request.customer_email,
             v_request.plan_code, v_request.session_type, 'waiting', v_request.intake_id,
             now(), now(), v_request.id, v_request.market,
             jsonb_build_object('request_id', v_request.id, 'source', 'request'))
        RETURNING * INTO v_session;
    ELSE
        -- A converted legacy orphan: assign this mechanic to the customer's existing
        -- session (its id stays valid); a pending one starts waiting, a live one stays live.
        UPDATE autodoctor.sessions s
           SET mechanic_id = v_uid,
               request_id = v_request.id,
               status = CASE WHEN s.status = 'pending' THEN 'waiting'::autodoctor.session_status
                             ELSE s.status END,
               updated_at = now()
         WHERE s.id = v_request.session_id
           AND s.mechanic_id IS NULL
           AND s.status IN ('pending', 'live')
        RETURNING * INTO v_session;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT409',
                MESSAGE = 'the session of this request was assigned or closed meanwhile',
                DETAIL = 'session_not_claimable',
                HINT = 'Refresh the incoming requests.';
        END IF;
    END IF;

    PERFORM autodoctor._log_event('request_accepted', v_request.id, v_session.id, v_uid,
                                  'pending', 'accepted', v_request.session_type,
                                  v_request.plan_code,
                                  jsonb_build_object('session_status', v_session.status));
    RETURN v_session;
END
$$;

COMMENT ON FUNCTION autodoctor.accept_session_request(uuid) IS
    'The calling mechanic accepts a pending request; its session is created (status waiting) '
    'or, for a converted orphan, assigned in the same transaction. Errors: 42501 '
    'not_authenticated, not_mechanic, not_qualified, out_of_service_area, own_request; PT404 '
    'request_not_found; PT409 request_not_pending, request_expired, capacity_reached, '
    'session_not_claimable.';
REVOKE ALL ON FUNCTION autodoctor.accept_session_request(uuid) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.accept_session_request(uuid) TO authenticated;

COMMIT;

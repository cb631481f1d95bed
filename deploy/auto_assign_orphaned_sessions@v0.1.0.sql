-- Deploy autodoctor:auto_assign_orphaned_sessions to pg
-- requires: orphan_dispatch
-- requires: intakes

BEGIN;

-- auto_assign_orphaned_sessions: repair option 3, the best available mechanic per orphan.
-- Oldest orphans first, each locked FOR UPDATE SKIP LOCKED (and its converted request
-- too), mechanics picked with SKIP LOCKED: parallel runs and concurrent claims or accepts
-- never assign one session twice and never wait on each other. Returns how many it assigned.
CREATE OR REPLACE FUNCTION autodoctor.auto_assign_orphaned_sessions(
    batch_size integer DEFAULT 100
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_orphan record;
    v_request_id uuid;
    v_mechanic uuid;
    v_session autodoctor.sessions;
    v_assigned integer := 0;
BEGIN
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'batch_size must be between 1 and 100000',
            DETAIL = 'invalid_batch_size';
    END IF;

    FOR v_orphan IN
        SELECT s.id, s.type, s.customer_user_id, s.market,
               (SELECT i.location FROM autodoctor.intakes i WHERE i.id = s.intake_id) AS location
          FROM autodoctor.sessions s
         WHERE s.mechanic_id IS NULL AND s.status IN ('pending', 'live')
         ORDER BY s.created_at, s.id
         LIMIT batch_size
           FOR UPDATE OF s SKIP LOCKED
    LOOP
        -- Its converted request, if any; if someone holds that request (an accept or a
        -- claim in flight), leave this orphan to them.
        v_request_id := NULL;
        SELECT r.id INTO v_request_id
          FROM autodoctor.session_requests r
         WHERE r.session_id = v_orphan.id AND r.status = 'pending'
           FOR UPDATE SKIP LOCKED;
        IF v_request_id IS NULL AND EXISTS (
            SELECT 1 FROM autodoctor.session_requests r
             WHERE r.session_id = v_orphan.id AND r.status = 'pending') THEN
            CONTINUE;
        END IF;

        v_mechanic := autodoctor._pick_mechanic(v_orphan.type, v_orphan.location,
                                                v_orphan.customer_user_id, v_orphan.market);
        IF v_mechanic IS NULL THEN
            CONTINUE;
        END IF;
        v_session := autodoctor._assign_orphan(v_orphan.id, v_mechanic, v_request_id, 'auto_assign', NULL);
        IF v_session.id IS NOT NULL THEN
            INSERT INTO autodoctor.notification_outbox (kind, mechanic_id, recipient, request_id, session_id)
            SELECT 'session_assigned', v_mechanic, u.email, v_request_id, v_session.id
              FROM auth.users u WHERE u.id = v_mechanic;
            v_assigned := v_assigned + 1;
        END IF;
    END LOOP;
    RETURN v_assigned;
END
$$;

COMMENT ON FUNCTION autodoctor.auto_assign_orphaned_sessions(integer) IS
    'Service role: assigns up to batch_size orphaned sessions, oldest first, each to the best '
    'available mechanic (online, qualified, under capacity, nearest then least loaded) and '
    'queues their e-mail. Returns the number assigned. Errors: 22023 invalid_batch_size.';
REVOKE ALL ON FUNCTION autodoctor.auto_assign_orphaned_sessions(integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.auto_assign_orphaned_sessions(integer) TO service_role;

COMMIT;

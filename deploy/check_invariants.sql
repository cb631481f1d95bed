-- Deploy autodoctor:check_invariants to pg
-- requires: session_fsm
-- requires: session_events
-- requires: mechanic_load

BEGIN;

-- check_invariants: every violated invariant of the data model, one row each.
-- Empty when healthy. Read-only; meant for tests, monitoring and after repairs.
CREATE OR REPLACE FUNCTION autodoctor.check_invariants()
RETURNS TABLE (invariant text, detail jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $$
    -- A request is accepted iff exactly one session has it as request_id.
    SELECT 'accepted_request_without_session', jsonb_build_object('request_id', r.id)
      FROM autodoctor.session_requests r
     WHERE r.status = 'accepted'
       AND NOT EXISTS (SELECT 1 FROM autodoctor.sessions s WHERE s.request_id = r.id)
    UNION ALL
    SELECT 'session_of_unaccepted_request', jsonb_build_object('session_id', s.id, 'request_id', r.id,
                                                               'request_status', r.status)
      FROM autodoctor.sessions s JOIN autodoctor.session_requests r ON r.id = s.request_id
     WHERE r.status <> 'accepted'
    UNION ALL
    -- Request and session point at each other.
    SELECT 'request_session_mismatch', jsonb_build_object('request_id', r.id, 'session_id', r.session_id)
      FROM autodoctor.session_requests r JOIN autodoctor.sessions s ON s.request_id = r.id
     WHERE r.session_id IS DISTINCT FROM s.id
    UNION ALL
    -- Nobody waits for a mechanic who does not exist.
    SELECT 'scheduled_or_waiting_without_mechanic', jsonb_build_object('session_id', s.id, 'status', s.status)
      FROM autodoctor.sessions s
     WHERE s.status IN ('scheduled', 'waiting') AND s.mechanic_id IS NULL
    UNION ALL
    -- An active orphan has a pending request pointing at it (after run_maintenance).
    SELECT 'orphan_without_pending_request', jsonb_build_object('session_id', s.id, 'status', s.status)
      FROM autodoctor.sessions s
     WHERE s.status IN ('pending', 'live') AND s.mechanic_id IS NULL
       AND NOT EXISTS (SELECT 1 FROM autodoctor.session_requests r
                        WHERE r.session_id = s.id AND r.status = 'pending')
    UNION ALL
    -- A pending request for a session is only for an orphan.
    SELECT 'pending_request_for_assigned_session', jsonb_build_object('request_id', r.id, 'session_id', s.id)
      FROM autodoctor.session_requests r JOIN autodoctor.sessions s ON s.id = r.session_id
     WHERE r.status = 'pending' AND (s.mechanic_id IS NOT NULL OR s.status NOT IN ('pending', 'live'))
    UNION ALL
    -- Every state change of a request was logged.
    SELECT 'request_change_without_event', jsonb_build_object('request_id', r.id, 'status', r.status)
      FROM autodoctor.session_requests r
     WHERE r.status <> 'pending'
       AND NOT EXISTS (
             SELECT 1 FROM autodoctor.session_events e
              WHERE e.request_id = r.id
                AND e.event = ANY (CASE r.status
                                       WHEN 'accepted' THEN ARRAY['request_accepted', 'session_assigned']
                                       WHEN 'cancelled' THEN ARRAY['request_cancelled']
                                       ELSE ARRAY['request_expired']
                                   END))
    UNION ALL
    -- Every logged status change follows the state machine.
    SELECT 'event_breaks_state_machine', jsonb_build_object('event_id', e.id, 'from', e.from_status, 'to', e.to_status)
      FROM autodoctor.session_events e
     WHERE e.event = 'session_status_changed'
       AND NOT autodoctor._transition_allowed(e.from_status::autodoctor.session_status,
                                              e.to_status::autodoctor.session_status)
    UNION ALL
    -- The load counter matches the sessions.
    SELECT 'mechanic_load_mismatch', jsonb_build_object('mechanic_id', m.user_id, 'counted', m.active_sessions,
                                                        'actual', a.n)
      FROM autodoctor.mechanics m
      CROSS JOIN LATERAL (SELECT count(*)::integer AS n FROM autodoctor.sessions s
                           WHERE s.mechanic_id = m.user_id
                             AND s.status IN ('scheduled', 'waiting', 'live')) a
     WHERE m.active_sessions <> a.n;
$$;

COMMENT ON FUNCTION autodoctor.check_invariants() IS
    'Service role: one row per violated invariant (accepted iff one session; no scheduled or '
    'waiting session without a mechanic; no active orphan without a pending request; events '
    'for every state change; state machine respected; load counters right). Empty when healthy.';
REVOKE ALL ON FUNCTION autodoctor.check_invariants() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.check_invariants() TO service_role;

COMMIT;

-- Revert autodoctor:event_policy_own_ids from pg

BEGIN;

-- Back to the policy as released (change session_events).
ALTER POLICY session_events_select_authenticated ON autodoctor.session_events
    USING (
        actor_id = (SELECT auth.uid())
        OR EXISTS (SELECT 1 FROM autodoctor.session_requests r
                    WHERE r.id = session_events.request_id
                      AND (r.customer_id = (SELECT auth.uid()) OR r.mechanic_id = (SELECT auth.uid())))
        OR EXISTS (SELECT 1 FROM autodoctor.sessions s
                    WHERE s.id = session_events.session_id
                      AND (s.customer_user_id = (SELECT auth.uid()) OR s.mechanic_id = (SELECT auth.uid())))
    );

COMMIT;

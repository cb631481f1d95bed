-- Deploy autodoctor:event_policy_own_ids to pg
-- requires: session_events
-- requires: session_requests
-- requires: sessions

BEGIN;

-- The same events as before, for every caller: those they logged, and those of the
-- requests and sessions they take part in. The released policy asked that of each event
-- with two correlated EXISTS, so a read scanned the log and probed requests and sessions
-- per event: a user with no events read all 1,000,000 (16,000 pages) to return nothing.
-- Now the caller's request ids and session ids are read once per statement (uncorrelated
-- ARRAY sub-selects: initplans, through the caller's own row-level security as before),
-- and each arm is an index condition on an index of every partition (actor_id,
-- request_id, session_id): one bitmap scan finds the caller's events, whatever the size of
-- the log. A NULL request_id or session_id matches no id, as the EXISTS found no row.
ALTER POLICY session_events_select_authenticated ON autodoctor.session_events
    USING (
        actor_id = (SELECT auth.uid())
        OR request_id = ANY (ARRAY(
               SELECT r.id FROM autodoctor.session_requests r
                WHERE r.customer_id = (SELECT auth.uid()) OR r.mechanic_id = (SELECT auth.uid())))
        OR session_id = ANY (ARRAY(
               SELECT s.id FROM autodoctor.sessions s
                WHERE s.customer_user_id = (SELECT auth.uid()) OR s.mechanic_id = (SELECT auth.uid())))
    );

COMMIT;

-- Deploy autodoctor:user_erasure to pg
-- requires: sessions
-- requires: session_requests
-- requires: session_events
-- requires: mechanic_load
-- requires: profiles

BEGIN;

-- Deleting a user from auth.users (as the database owner, or as Supabase Auth's own role)
-- always succeeds and keeps the invariants. What the other party needs stays, without the
-- erased person's identity:
--   - a customer: their pending requests are cancelled and their unfinished sessions
--     (pending, scheduled, waiting, live) cancelled with cancel_reason 'customer_erased',
--     each change logged; then every request and session of theirs loses the customer's
--     id (NULL), name, e-mail, notes, location and idempotency key. Their intakes
--     (vehicle, concern, location) and profile are deleted.
--   - a mechanic: their unfinished sessions are cancelled with cancel_reason
--     'mechanic_erased' (logged; the customer may ask again); then every session and
--     request of theirs loses the mechanic's id (NULL). Their profile, mechanic row and
--     queued e-mails are deleted.
-- The event log keeps its rows (ids only: a uuid whose user is gone names nobody).

-- Foreign keys to the user: SET NULL instead of deleting the other party's history (or
-- refusing, for a mechanic who ever had a session). Every existing row satisfied the
-- same keys before, so they are added NOT VALID (no scan under the lock).
ALTER TABLE autodoctor.sessions DROP CONSTRAINT sessions_mechanic_id_fkey;
ALTER TABLE autodoctor.sessions
    ADD CONSTRAINT sessions_mechanic_id_fkey FOREIGN KEY (mechanic_id)
    REFERENCES autodoctor.profiles (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE autodoctor.sessions DROP CONSTRAINT sessions_customer_user_id_fkey;
ALTER TABLE autodoctor.sessions
    ADD CONSTRAINT sessions_customer_user_id_fkey FOREIGN KEY (customer_user_id)
    REFERENCES auth.users (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE autodoctor.session_requests ALTER COLUMN customer_id DROP NOT NULL;
ALTER TABLE autodoctor.session_requests DROP CONSTRAINT session_requests_customer_id_fkey;
ALTER TABLE autodoctor.session_requests
    ADD CONSTRAINT session_requests_customer_id_fkey FOREIGN KEY (customer_id)
    REFERENCES auth.users (id) ON DELETE SET NULL NOT VALID;

-- The load counter's trigger fires for whoever changes a session, Supabase Auth's role
-- included when it deletes a user: it must not depend on that role's privileges.
-- (Its search_path is already '' since change mechanic_load; said again here so that this
-- statement is safe on its own.)
ALTER FUNCTION autodoctor._track_mechanic_load() SECURITY DEFINER SET search_path = '';

-- _erase_user: BEFORE DELETE on auth.users. Ends what the user left open, in the lock
-- order of the package (requests, then sessions, then mechanics), logging each change as
-- the functions do; the foreign keys then clear the ids.
CREATE OR REPLACE FUNCTION autodoctor._erase_user()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_row record;
    v_request uuid;
BEGIN
    -- The customer's pending requests.
    FOR v_row IN
        UPDATE autodoctor.session_requests r
           SET status = 'cancelled', cancelled_at = now(), updated_at = now()
         WHERE r.customer_id = OLD.id AND r.status = 'pending'
        RETURNING r.id, r.session_id, r.session_type, r.plan_code
    LOOP
        PERFORM autodoctor._log_event('request_cancelled', v_row.id, v_row.session_id, NULL,
                                      'pending', 'cancelled', v_row.session_type, v_row.plan_code,
                                      jsonb_build_object('reason', 'customer_erased'));
    END LOOP;
    -- Unfinished sessions of either side.
    FOR v_row IN
        WITH open AS (
            SELECT s.id, s.status AS from_status,
                   CASE WHEN s.customer_user_id = OLD.id THEN 'customer_erased'
                        ELSE 'mechanic_erased' END AS reason
              FROM autodoctor.sessions s
             WHERE (s.customer_user_id = OLD.id OR s.mechanic_id = OLD.id)
               AND s.status IN ('pending', 'scheduled', 'waiting', 'live')
             ORDER BY s.id
               FOR UPDATE
        )
        UPDATE autodoctor.sessions s
           SET status = 'cancelled', cancel_reason = open.reason, ended_at = now(),
               updated_at = now()
          FROM open
         WHERE s.id = open.id
        RETURNING s.id, s.request_id, s.type, s.plan, open.from_status, open.reason
    LOOP
        v_request := NULL;
        PERFORM autodoctor._log_event('session_status_changed', v_row.request_id, v_row.id, NULL,
                                      v_row.from_status::text, 'cancelled', v_row.type, v_row.plan,
                                      jsonb_build_object('reason', v_row.reason));
        -- A pending request converted for this session (a legacy orphan) goes with it.
        UPDATE autodoctor.session_requests r
           SET status = 'cancelled', cancelled_at = now(), updated_at = now()
         WHERE r.session_id = v_row.id AND r.status = 'pending'
        RETURNING r.id INTO v_request;
        IF v_request IS NOT NULL THEN
            PERFORM autodoctor._log_event('request_cancelled', v_request, v_row.id, NULL,
                                          'pending', 'cancelled', v_row.type, v_row.plan,
                                          jsonb_build_object('reason', v_row.reason));
        END IF;
    END LOOP;
    -- What identified the customer, on the rows the mechanics keep.
    UPDATE autodoctor.session_requests r
       SET customer_name = NULL, customer_email = NULL, notes = NULL, location = NULL,
           idempotency_key = NULL, updated_at = now()
     WHERE r.customer_id = OLD.id;
    UPDATE autodoctor.sessions s
       SET customer_email = NULL, updated_at = now()
     WHERE s.customer_user_id = OLD.id;
    RETURN OLD;
END
$$;

COMMENT ON FUNCTION autodoctor._erase_user() IS
    'Private trigger (BEFORE DELETE on auth.users): cancels and logs what the user left open, '
    'removes their identity from the rows the other party keeps.';
REVOKE ALL ON FUNCTION autodoctor._erase_user() FROM PUBLIC;

CREATE TRIGGER autodoctor_on_auth_user_deleted
    BEFORE DELETE ON auth.users
    FOR EACH ROW EXECUTE FUNCTION autodoctor._erase_user();

COMMIT;

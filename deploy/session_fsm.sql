-- Deploy autodoctor:session_fsm to pg
-- requires: sessions

BEGIN;

-- _transition_allowed: the session state machine, as a truth table.
-- pending -> scheduled | waiting | cancelled; scheduled -> waiting | cancelled;
-- waiting -> live | cancelled; live -> completed | cancelled; completed, cancelled final.
CREATE OR REPLACE FUNCTION autodoctor._transition_allowed(
    from_status autodoctor.session_status,
    to_status autodoctor.session_status
)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
SET search_path = ''
AS $$
    SELECT (from_status, to_status) IN (
        ('pending'::autodoctor.session_status, 'scheduled'::autodoctor.session_status),
        ('pending', 'waiting'),
        ('pending', 'cancelled'),
        ('scheduled', 'waiting'),
        ('scheduled', 'cancelled'),
        ('waiting', 'live'),
        ('waiting', 'cancelled'),
        ('live', 'completed'),
        ('live', 'cancelled')
    );
$$;

COMMENT ON FUNCTION autodoctor._transition_allowed(autodoctor.session_status, autodoctor.session_status) IS
    'Private: whether the session state machine allows from_status -> to_status.';
REVOKE ALL ON FUNCTION autodoctor._transition_allowed(autodoctor.session_status, autodoctor.session_status) FROM PUBLIC;

-- _enforce_session_fsm: refuses a status change the state machine does not allow.
-- A trigger, so that direct writes (old code paths, the owner) cannot bypass it either;
-- and a session cannot enter scheduled, waiting or live without a mechanic.
CREATE OR REPLACE FUNCTION autodoctor._enforce_session_fsm()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NOT autodoctor._transition_allowed(OLD.status, NEW.status) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PT409',
            MESSAGE = format('a session cannot go from %s to %s', OLD.status, NEW.status),
            DETAIL = 'invalid_transition',
            HINT = 'Allowed: pending->scheduled|waiting|cancelled, scheduled->waiting|cancelled, '
                || 'waiting->live|cancelled, live->completed|cancelled.';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('scheduled', 'waiting', 'live') AND NEW.mechanic_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PT409',
            MESSAGE = format('a session without a mechanic cannot become %s', NEW.status),
            DETAIL = 'mechanic_required',
            HINT = 'Assign a mechanic first (accept, claim or auto-assign).';
    END IF;
    RETURN NEW;
END
$$;

COMMENT ON FUNCTION autodoctor._enforce_session_fsm() IS
    'Private trigger: PT409 invalid_transition / mechanic_required on a forbidden status change.';
REVOKE ALL ON FUNCTION autodoctor._enforce_session_fsm() FROM PUBLIC;

CREATE TRIGGER sessions_enforce_fsm
    BEFORE UPDATE OF status ON autodoctor.sessions
    FOR EACH ROW EXECUTE FUNCTION autodoctor._enforce_session_fsm();

COMMIT;

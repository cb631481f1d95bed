-- Deploy autodoctor:plpgsql_helpers to pg
-- requires: settings
-- requires: session_fsm

BEGIN;

-- The same two helpers in PL/pgSQL. A SQL function that sets search_path cannot be
-- inlined into its caller's query, and every statement that calls it plans its body
-- again; PL/pgSQL keeps its statements' plans for the session. _request_ttl() is called by
-- every create and intake (the request's expiry), _transition_allowed() by every session
-- status change (the state machine trigger). In a 1,000-create profile on one connection,
-- _request_ttl took more of a create's time than anything but the event's INSERT.

-- _request_ttl: the configured request TTL.
-- STABLE and owner-only; used for request expiry defaults.
CREATE OR REPLACE FUNCTION autodoctor._request_ttl()
RETURNS interval
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    RETURN coalesce((SELECT s.request_ttl FROM autodoctor.settings s WHERE s.id),
                    interval '24 hours');
END
$$;

COMMENT ON FUNCTION autodoctor._request_ttl() IS
    'Private: the request TTL from autodoctor.settings (24 hours when unset).';
REVOKE ALL ON FUNCTION autodoctor._request_ttl() FROM PUBLIC;

-- _transition_allowed: the session state machine, as a truth table.
-- pending -> scheduled | waiting | cancelled; scheduled -> waiting | cancelled;
-- waiting -> live | cancelled; live -> completed | cancelled; completed, cancelled final.
CREATE OR REPLACE FUNCTION autodoctor._transition_allowed(
    from_status autodoctor.session_status,
    to_status autodoctor.session_status
)
RETURNS boolean
LANGUAGE plpgsql
IMMUTABLE
SET search_path = ''
AS $$
BEGIN
    RETURN (from_status, to_status) IN (
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
END
$$;

COMMENT ON FUNCTION autodoctor._transition_allowed(autodoctor.session_status, autodoctor.session_status) IS
    'Private: whether the session state machine allows from_status -> to_status.';
REVOKE ALL ON FUNCTION autodoctor._transition_allowed(autodoctor.session_status, autodoctor.session_status) FROM PUBLIC;

COMMIT;

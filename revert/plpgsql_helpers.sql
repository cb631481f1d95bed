-- Revert autodoctor:plpgsql_helpers from pg

BEGIN;

-- Both helpers as changes settings and session_fsm created them (SQL functions).

-- _request_ttl: the configured request TTL.
-- STABLE and owner-only; used for request expiry defaults.
CREATE OR REPLACE FUNCTION autodoctor._request_ttl()
RETURNS interval
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $$
    SELECT coalesce((SELECT s.request_ttl FROM autodoctor.settings s WHERE s.id), interval '24 hours');
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

COMMIT;

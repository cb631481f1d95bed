-- Deploy autodoctor:settings to pg
-- requires: appschema

BEGIN;

CREATE TABLE autodoctor.settings (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    request_ttl interval NOT NULL DEFAULT interval '24 hours'
        CHECK (request_ttl > interval '0'),
    -- At most this many online mechanics are e-mailed about one new request (nearest,
    -- then least loaded, first), so one request never fans out to the whole fleet.
    new_request_email_limit integer NOT NULL DEFAULT 50
        CHECK (new_request_email_limit BETWEEN 0 AND 10000),
    -- Bounded history: monthly partitions of session_events and notification_outbox
    -- wholly older than these are dropped by run_maintenance().
    event_retention interval NOT NULL DEFAULT interval '180 days'
        CHECK (event_retention >= interval '1 day'),
    outbox_retention interval NOT NULL DEFAULT interval '90 days'
        CHECK (outbox_retention >= interval '1 day'),
    -- How broadcasts leave: 'transaction' (one NOTIFY in each event's own transaction) or
    -- 'relay' (the hot transaction only logs; a relay NOTIFYs once per batch). Changed
    -- with autodoctor.set_notify_mode(), which also switches the trigger.
    notify_mode text NOT NULL DEFAULT 'transaction' CHECK (notify_mode IN ('transaction', 'relay')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE autodoctor.settings IS
    'The one row of package settings: request_ttl (how long a request stays pending), '
    'new_request_email_limit (mechanics e-mailed per new request), event_retention and '
    'outbox_retention (history kept).';

INSERT INTO autodoctor.settings DEFAULT VALUES;

ALTER TABLE autodoctor.settings ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON autodoctor.settings TO service_role;

CREATE POLICY settings_select_service ON autodoctor.settings
    FOR SELECT TO service_role USING (true);
COMMENT ON POLICY settings_select_service ON autodoctor.settings IS
    'The service role reads the settings; nobody writes them but the owner.';

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

COMMIT;

-- Deploy autodoctor:pending_request_cap to pg
-- requires: settings

BEGIN;

-- How many pending requests one customer may hold at once: create_session_request and
-- submit_intake refuse one more with PT429 too_many_pending_requests (HTTP 429 through
-- PostgREST). Five by default: a customer asks for one session at a time, and a retry
-- with the same idempotency key is not a new request.
ALTER TABLE autodoctor.settings
    ADD COLUMN max_pending_requests integer NOT NULL DEFAULT 5
        CONSTRAINT settings_max_pending_requests_check CHECK (max_pending_requests BETWEEN 1 AND 1000);

COMMENT ON COLUMN autodoctor.settings.max_pending_requests IS
    'How many pending requests one customer may hold at once (PT429 beyond it).';

COMMIT;

-- Revert autodoctor:unread_indexes from pg

BEGIN;

DROP INDEX autodoctor.sessions_stripe_session_id_key;
ALTER TABLE autodoctor.sessions
    ADD CONSTRAINT sessions_stripe_session_id_key UNIQUE (stripe_session_id, market);

CREATE INDEX session_requests_session_id_idx
    ON autodoctor.session_requests (session_id) WHERE session_id IS NOT NULL;

COMMIT;

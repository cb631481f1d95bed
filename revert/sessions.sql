-- Revert autodoctor:sessions from pg

BEGIN;

ALTER TABLE autodoctor.session_requests DROP CONSTRAINT session_requests_session_id_fkey;
DROP TABLE autodoctor.sessions;

COMMIT;

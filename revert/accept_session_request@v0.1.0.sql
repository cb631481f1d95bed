-- Revert autodoctor:accept_session_request from pg

BEGIN;

DROP FUNCTION autodoctor.accept_session_request(uuid);

COMMIT;

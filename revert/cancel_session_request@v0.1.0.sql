-- Revert autodoctor:cancel_session_request from pg

BEGIN;

DROP FUNCTION autodoctor.cancel_session_request(uuid);

COMMIT;

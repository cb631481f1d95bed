-- Revert autodoctor:create_session_request from pg

BEGIN;

DROP FUNCTION autodoctor.create_session_request(autodoctor.session_type, text, text, text);

COMMIT;

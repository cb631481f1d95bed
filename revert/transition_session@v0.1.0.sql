-- Revert autodoctor:transition_session from pg

BEGIN;

DROP FUNCTION autodoctor.transition_session(uuid, autodoctor.session_status);

COMMIT;

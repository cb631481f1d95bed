-- Revert autodoctor:session_fsm from pg

BEGIN;

DROP TRIGGER sessions_enforce_fsm ON autodoctor.sessions;
DROP FUNCTION autodoctor._enforce_session_fsm();
DROP FUNCTION autodoctor._transition_allowed(autodoctor.session_status, autodoctor.session_status);

COMMIT;

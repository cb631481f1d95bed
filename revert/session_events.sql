-- Revert autodoctor:session_events from pg

BEGIN;

DROP FUNCTION autodoctor._log_event(text, uuid, uuid, uuid, text, text, autodoctor.session_type, text, jsonb);
DROP TABLE autodoctor.session_events;
DROP FUNCTION autodoctor._forbid_event_change();
DROP FUNCTION autodoctor._notify_event();

COMMIT;

-- Revert autodoctor:session_events from pg

BEGIN;

-- Refuses while the table holds rows, unless autodoctor.allow_data_loss = on.
DO $guard$ BEGIN PERFORM autodoctor._guard_data_loss('autodoctor.session_events'); END $guard$;

DROP FUNCTION autodoctor._log_event(text, uuid, uuid, uuid, text, text, autodoctor.session_type, text, jsonb);
DROP TABLE autodoctor.session_events;
DROP FUNCTION autodoctor._forbid_event_change();
DROP FUNCTION autodoctor._notify_event();

COMMIT;

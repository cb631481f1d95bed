-- Revert autodoctor:notify_relay from pg

BEGIN;

ALTER TABLE autodoctor.session_events ENABLE TRIGGER session_events_notify;
DROP FUNCTION autodoctor.set_notify_mode(text);
DROP FUNCTION autodoctor.relay_events(integer);
DROP TABLE autodoctor.relay_state;

COMMIT;

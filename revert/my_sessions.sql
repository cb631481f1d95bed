-- Revert autodoctor:my_sessions from pg

BEGIN;

DROP VIEW autodoctor.my_sessions;

COMMIT;

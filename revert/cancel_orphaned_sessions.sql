-- Revert autodoctor:cancel_orphaned_sessions from pg

BEGIN;

DROP FUNCTION autodoctor.cancel_orphaned_sessions(interval);

COMMIT;

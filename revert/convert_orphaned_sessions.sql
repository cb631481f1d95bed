-- Revert autodoctor:convert_orphaned_sessions from pg

BEGIN;

DROP FUNCTION autodoctor.convert_orphaned_sessions();

COMMIT;

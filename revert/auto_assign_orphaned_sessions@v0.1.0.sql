-- Revert autodoctor:auto_assign_orphaned_sessions from pg

BEGIN;

DROP FUNCTION autodoctor.auto_assign_orphaned_sessions(integer);

COMMIT;

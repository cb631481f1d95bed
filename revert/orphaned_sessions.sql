-- Revert autodoctor:orphaned_sessions from pg

BEGIN;

DROP VIEW autodoctor.orphaned_sessions;

COMMIT;

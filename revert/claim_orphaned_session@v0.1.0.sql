-- Revert autodoctor:claim_orphaned_session from pg

BEGIN;

DROP FUNCTION autodoctor.claim_orphaned_session(uuid);

COMMIT;

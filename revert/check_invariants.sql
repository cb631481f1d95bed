-- Revert autodoctor:check_invariants from pg

BEGIN;

DROP FUNCTION autodoctor.check_invariants();

COMMIT;

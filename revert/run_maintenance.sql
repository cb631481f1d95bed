-- Revert autodoctor:run_maintenance from pg

BEGIN;

DROP FUNCTION autodoctor.run_maintenance();

COMMIT;

-- Revert autodoctor:helpers from pg

BEGIN;

DROP FUNCTION autodoctor._point(double precision, double precision);
DROP FUNCTION autodoctor._caller();

COMMIT;

-- Revert autodoctor:set_mechanic_availability from pg

BEGIN;

DROP FUNCTION autodoctor.set_mechanic_availability(boolean, double precision, double precision);

COMMIT;

-- Revert autodoctor:register_mechanic from pg

BEGIN;

DROP FUNCTION autodoctor.register_mechanic(uuid, autodoctor.session_type[], double precision, double precision, numeric, integer);

COMMIT;

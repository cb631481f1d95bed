-- Revert autodoctor:appschema from pg

BEGIN;

DROP FUNCTION autodoctor._guard_data_loss(regclass[]);
REVOKE ALL ON SCHEMA autodoctor FROM authenticated, service_role;
DROP SCHEMA autodoctor;

COMMIT;

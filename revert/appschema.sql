-- Revert autodoctor:appschema from pg

BEGIN;

REVOKE ALL ON SCHEMA autodoctor FROM authenticated, service_role;
DROP SCHEMA autodoctor;

COMMIT;

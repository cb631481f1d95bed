-- Revert autodoctor:expire_stale_requests from pg

BEGIN;

DROP FUNCTION autodoctor.expire_stale_requests();

COMMIT;

-- Revert autodoctor:fan_out_new_requests from pg

BEGIN;

DROP FUNCTION autodoctor.fan_out_new_requests(integer);

COMMIT;

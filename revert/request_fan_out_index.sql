-- Revert autodoctor:request_fan_out_index from pg

BEGIN;

DROP INDEX autodoctor.session_requests_fan_out_idx;

COMMIT;

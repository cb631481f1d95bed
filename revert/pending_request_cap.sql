-- Revert autodoctor:pending_request_cap from pg

BEGIN;

ALTER TABLE autodoctor.settings DROP COLUMN max_pending_requests;

COMMIT;

-- Revert autodoctor:pending_customer_index from pg

BEGIN;

DROP INDEX autodoctor.session_requests_pending_customer_idx;

COMMIT;

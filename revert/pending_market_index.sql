-- Revert autodoctor:pending_market_index from pg

BEGIN;

DROP INDEX autodoctor.session_requests_pending_market_idx;

COMMIT;

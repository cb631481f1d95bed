-- Verify autodoctor:pending_request_cap on pg

BEGIN;

SELECT max_pending_requests FROM autodoctor.settings WHERE false;

ROLLBACK;

-- Verify autodoctor:pending_customer_index on pg

BEGIN;

DO $$
BEGIN
    ASSERT to_regclass('autodoctor.session_requests_pending_customer_idx') IS NOT NULL,
        'session_requests_pending_customer_idx must exist';
END
$$;

ROLLBACK;

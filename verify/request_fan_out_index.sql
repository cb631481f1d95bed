-- Verify autodoctor:request_fan_out_index on pg

BEGIN;

DO $$
BEGIN
    ASSERT to_regclass('autodoctor.session_requests_fan_out_idx') IS NOT NULL,
        'session_requests_fan_out_idx must exist';
END
$$;

ROLLBACK;

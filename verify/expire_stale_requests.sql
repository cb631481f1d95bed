-- Verify autodoctor:expire_stale_requests on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role', 'autodoctor.expire_stale_requests()', 'execute'),
        'service_role must be able to execute expire_stale_requests';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor.expire_stale_requests()', 'execute'),
        'authenticated must not execute expire_stale_requests';
END
$$;

ROLLBACK;

-- Verify autodoctor:fan_out_new_requests on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role', 'autodoctor.fan_out_new_requests(integer)', 'execute'),
        'service_role must be able to execute fan_out_new_requests';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor.fan_out_new_requests(integer)', 'execute'),
        'authenticated must not execute fan_out_new_requests';
END
$$;

ROLLBACK;

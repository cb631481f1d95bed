-- Verify autodoctor:run_maintenance on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role', 'autodoctor.run_maintenance()', 'execute'),
        'service_role must be able to execute run_maintenance';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor.run_maintenance()', 'execute'),
        'authenticated must not execute run_maintenance';
END
$$;

ROLLBACK;

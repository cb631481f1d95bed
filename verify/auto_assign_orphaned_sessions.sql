-- Verify autodoctor:auto_assign_orphaned_sessions on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role', 'autodoctor.auto_assign_orphaned_sessions(integer)', 'execute'),
        'service_role must be able to execute auto_assign_orphaned_sessions';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor.auto_assign_orphaned_sessions(integer)', 'execute'),
        'authenticated must not execute auto_assign_orphaned_sessions';
    ASSERT NOT has_function_privilege('service_role', 'autodoctor._nearest_available_mechanics(uuid[], uuid[], integer)', 'execute'),
        'service_role must not execute the private helper _nearest_available_mechanics';
END
$$;

ROLLBACK;

-- Verify autodoctor:convert_orphaned_sessions on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role', 'autodoctor.convert_orphaned_sessions()', 'execute'),
        'service_role must be able to execute convert_orphaned_sessions';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor.convert_orphaned_sessions()', 'execute'),
        'authenticated must not execute convert_orphaned_sessions';
END
$$;

ROLLBACK;

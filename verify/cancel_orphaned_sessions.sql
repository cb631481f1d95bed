-- Verify autodoctor:cancel_orphaned_sessions on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role', 'autodoctor.cancel_orphaned_sessions(interval)', 'execute'),
        'service_role must be able to execute cancel_orphaned_sessions';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor.cancel_orphaned_sessions(interval)', 'execute'),
        'authenticated must not execute cancel_orphaned_sessions';
END
$$;

ROLLBACK;

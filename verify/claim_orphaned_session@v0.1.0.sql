-- Verify autodoctor:claim_orphaned_session on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('authenticated', 'autodoctor.claim_orphaned_session(uuid)', 'execute'),
        'authenticated must be able to execute claim_orphaned_session';
END
$$;

ROLLBACK;

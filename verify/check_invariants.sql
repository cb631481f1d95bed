-- Verify autodoctor:check_invariants on pg

BEGIN;

SELECT invariant, detail FROM autodoctor.check_invariants() WHERE FALSE;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role', 'autodoctor.check_invariants()', 'execute'),
        'service_role must be able to execute check_invariants';
END
$$;

ROLLBACK;

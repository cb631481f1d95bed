-- Verify autodoctor:mechanic_guards on pg

BEGIN;

DO $$
BEGIN
    ASSERT to_regprocedure('autodoctor._require_mechanic(uuid, text)') IS NOT NULL,
        '_require_mechanic(uuid, text) must exist';
    ASSERT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                     JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = 'autodoctor' AND p.proname = '_require_can_serve'),
        '_require_can_serve must exist';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor._require_mechanic(uuid, text)', 'execute'),
        '_require_mechanic must not be executable by authenticated';
END
$$;

ROLLBACK;

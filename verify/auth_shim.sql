-- Verify autodoctor:auth_shim on pg

BEGIN;

SELECT id, email, raw_user_meta_data, created_at FROM auth.users WHERE FALSE;

DO $$
BEGIN
    ASSERT (SELECT count(*) FROM pg_catalog.pg_roles
            WHERE rolname IN ('anon', 'authenticated', 'service_role')) = 3,
        'roles anon, authenticated and service_role must exist';
    ASSERT to_regprocedure('auth.uid()') IS NOT NULL, 'auth.uid() must exist';
    ASSERT to_regprocedure('auth.jwt()') IS NOT NULL, 'auth.jwt() must exist';
END
$$;

ROLLBACK;

-- Deploy autodoctor:auth_shim to pg

BEGIN;

-- Creates what Supabase already provides, and only what is missing: roles anon,
-- authenticated and service_role; schema auth with auth.users, auth.uid(), auth.jwt()
-- and auth.role(). Everything created here carries a marker comment so that revert
-- removes exactly what this change created and never touches a pre-existing auth.
DO $shim$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change auth_shim';
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
            EXECUTE format('COMMENT ON ROLE %I IS %L', v_role, v_marker);
        END IF;
    END LOOP;

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'auth') THEN
        CREATE SCHEMA auth;
        EXECUTE format('COMMENT ON SCHEMA auth IS %L', v_marker);
        GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
    END IF;

    IF to_regclass('auth.users') IS NULL THEN
        CREATE TABLE auth.users (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            email text,
            raw_user_meta_data jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        EXECUTE format('COMMENT ON TABLE auth.users IS %L', v_marker);
        -- Nobody reads auth.users through the package: RLS on, no policy, no grant.
        ALTER TABLE auth.users ENABLE ROW LEVEL SECURITY;
    END IF;

    -- As Supabase defines them: STABLE SQL over the transaction-local JWT claims that
    -- PostgREST sets (request.jwt.claims), with the older per-claim setting as fallback.
    IF to_regprocedure('auth.jwt()') IS NULL THEN
        CREATE FUNCTION auth.jwt()
        RETURNS jsonb
        LANGUAGE sql
        STABLE
        AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')
            )::jsonb
        $f$;
        EXECUTE format('COMMENT ON FUNCTION auth.jwt() IS %L', v_marker);
        GRANT EXECUTE ON FUNCTION auth.jwt() TO authenticated, service_role;
    END IF;

    IF to_regprocedure('auth.uid()') IS NULL THEN
        CREATE FUNCTION auth.uid()
        RETURNS uuid
        LANGUAGE sql
        STABLE
        AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $f$;
        EXECUTE format('COMMENT ON FUNCTION auth.uid() IS %L', v_marker);
        GRANT EXECUTE ON FUNCTION auth.uid() TO authenticated, service_role;
    END IF;

    IF to_regprocedure('auth.role()') IS NULL THEN
        CREATE FUNCTION auth.role()
        RETURNS text
        LANGUAGE sql
        STABLE
        AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.role', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
            )::text
        $f$;
        EXECUTE format('COMMENT ON FUNCTION auth.role() IS %L', v_marker);
        GRANT EXECUTE ON FUNCTION auth.role() TO authenticated, service_role;
    END IF;
END
$shim$;

COMMIT;

-- Deploy autodoctor:extensions to pg
-- requires: auth_shim

BEGIN;

-- PostGIS, wherever it already lives: schema `extensions` on Supabase, `public` on a plain
-- PostgreSQL where someone ran CREATE EXTENSION postgis (its default). The package binds
-- PostGIS's objects by identity when it creates its own (see deploy/helpers.sql), so any
-- schema works, and the functions keep SET search_path = ''. Where PostGIS is missing it
-- is created in schema `extensions` (created too if missing); what this change creates
-- carries a marker comment, so revert removes only that, and only while nothing else uses it.
-- On a managed service where the deploying role may not create extensions, an
-- administrator runs beforehand:
--     CREATE SCHEMA IF NOT EXISTS extensions;
--     CREATE EXTENSION IF NOT EXISTS postgis SCHEMA extensions;
DO $ext$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change extensions';
    v_schema name;
BEGIN
    SELECT n.nspname INTO v_schema
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'postgis';
    IF v_schema IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'postgis') THEN
            RAISE EXCEPTION USING
                ERRCODE = 'feature_not_supported',
                MESSAGE = 'autodoctor-db needs the PostGIS extension, which this server does not have',
                HINT = 'Install PostGIS 3 for this PostgreSQL (Debian: postgresql-15-postgis-3), '
                    || 'or have an administrator run: CREATE EXTENSION postgis SCHEMA extensions;';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'extensions') THEN
            CREATE SCHEMA extensions;
            EXECUTE format('COMMENT ON SCHEMA extensions IS %L', v_marker);
        END IF;
        BEGIN
            CREATE EXTENSION postgis SCHEMA extensions;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION USING
                ERRCODE = 'insufficient_privilege',
                MESSAGE = 'the deploying role may not create the PostGIS extension',
                HINT = 'Have an administrator run: CREATE SCHEMA IF NOT EXISTS extensions; '
                    || 'CREATE EXTENSION postgis SCHEMA extensions; then deploy again.';
        END;
        EXECUTE format('COMMENT ON EXTENSION postgis IS %L', v_marker);
        v_schema := 'extensions';
    END IF;

    -- Row-level security policies and security-invoker views call PostGIS as the caller.
    IF NOT (has_schema_privilege('authenticated', v_schema, 'USAGE')
            AND has_schema_privilege('service_role', v_schema, 'USAGE')) THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO authenticated, service_role', v_schema);
    END IF;
    IF NOT (has_schema_privilege('authenticated', v_schema, 'USAGE')
            AND has_schema_privilege('service_role', v_schema, 'USAGE')) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = format('roles authenticated and service_role need USAGE on schema %I, where PostGIS is', v_schema),
            HINT = format('Have an administrator run: GRANT USAGE ON SCHEMA %I TO authenticated, service_role;', v_schema);
    END IF;
END
$ext$;

COMMIT;

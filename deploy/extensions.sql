-- Deploy autodoctor:extensions to pg
-- requires: auth_shim

BEGIN;

-- Extensions live in schema `extensions`, never in `public` (as on Supabase). The
-- schema and PostGIS are created only when missing and then carry a marker comment, so
-- revert removes only what this change created. On a managed service where the deploying
-- role may not create extensions, an administrator runs beforehand:
--     CREATE SCHEMA IF NOT EXISTS extensions;
--     CREATE EXTENSION IF NOT EXISTS postgis SCHEMA extensions;
DO $ext$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change extensions';
    v_schema name;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'extensions') THEN
        CREATE SCHEMA extensions;
        EXECUTE format('COMMENT ON SCHEMA extensions IS %L', v_marker);
    END IF;
    GRANT USAGE ON SCHEMA extensions TO authenticated, service_role;

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
    ELSIF v_schema <> 'extensions' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'feature_not_supported',
            MESSAGE = format('PostGIS is installed in schema %I; autodoctor-db expects it in schema extensions', v_schema),
            HINT = 'Move it with: ALTER EXTENSION postgis SET SCHEMA extensions;';
    END IF;
END
$ext$;

COMMIT;

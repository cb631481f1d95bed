-- Revert autodoctor:extensions from pg

BEGIN;

DO $ext$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change extensions';
BEGIN
    IF obj_description((SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'postgis'), 'pg_extension') = v_marker THEN
        DROP EXTENSION postgis;
    END IF;
    -- The USAGE grants are this change's where it created the schema, or the roles (the
    -- auth_shim marks roles it created): then revoke them, so those roles can be dropped.
    IF shobj_description((SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'authenticated'), 'pg_authid')
           = 'autodoctor-db: created by sqitch change auth_shim' THEN
        REVOKE ALL ON SCHEMA extensions FROM authenticated;
    END IF;
    IF shobj_description((SELECT oid FROM pg_catalog.pg_roles WHERE rolname = 'service_role'), 'pg_authid')
           = 'autodoctor-db: created by sqitch change auth_shim' THEN
        REVOKE ALL ON SCHEMA extensions FROM service_role;
    END IF;
    IF obj_description((SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'extensions'), 'pg_namespace') = v_marker THEN
        REVOKE ALL ON SCHEMA extensions FROM authenticated, service_role;
        -- Not CASCADE: an extension someone else put here keeps the schema alive.
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n
                         ON n.oid = e.extnamespace WHERE n.nspname = 'extensions') THEN
            DROP SCHEMA extensions;
        END IF;
    END IF;
END
$ext$;

COMMIT;

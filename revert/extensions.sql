-- Revert autodoctor:extensions from pg

BEGIN;

-- Removes only what deploy created (marker comment), and never what something else uses:
-- PostGIS stays while any object outside the extension depends on it, schema extensions
-- while anything is in it.
DO $ext$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change extensions';
    v_shim CONSTANT text := 'autodoctor-db: created by sqitch change auth_shim';
    v_schema name;
    v_granted name;
    v_role text;
BEGIN
    SELECT n.nspname INTO v_schema
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'postgis';
    IF obj_description((SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'postgis'), 'pg_extension') = v_marker THEN
        BEGIN
            DROP EXTENSION postgis;
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'PostGIS left in place: other objects in this database use it';
        END;
    END IF;
    -- USAGE granted to roles the auth_shim created (it marks them) is revoked, so that
    -- those roles can be dropped; roles that existed before keep what they had.
    FOREACH v_role IN ARRAY ARRAY['authenticated', 'service_role'] LOOP
        IF shobj_description((SELECT oid FROM pg_catalog.pg_roles WHERE rolname = v_role), 'pg_authid') = v_shim THEN
            FOR v_granted IN SELECT DISTINCT s FROM unnest(ARRAY[v_schema, 'extensions']::name[]) AS s
                              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = s) LOOP
                EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', v_granted, v_role);
            END LOOP;
        END IF;
    END LOOP;
    IF obj_description((SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'extensions'), 'pg_namespace') = v_marker THEN
        REVOKE ALL ON SCHEMA extensions FROM authenticated, service_role;
        BEGIN
            DROP SCHEMA extensions;  -- never CASCADE
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'schema extensions left in place: it holds objects that are not the package''s';
        END;
    END IF;
END
$ext$;

COMMIT;

-- Revert autodoctor:auth_shim from pg

BEGIN;

-- Drops only what deploy created (the objects carrying its marker comment). Roles are
-- cluster-wide: one still used by another database is left in place, with a notice.
DO $shim$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change auth_shim';
    v_role text;
BEGIN
    IF obj_description(to_regprocedure('auth.role()'), 'pg_proc') = v_marker THEN
        DROP FUNCTION auth.role();
    END IF;
    IF obj_description(to_regprocedure('auth.uid()'), 'pg_proc') = v_marker THEN
        DROP FUNCTION auth.uid();
    END IF;
    IF obj_description(to_regprocedure('auth.jwt()'), 'pg_proc') = v_marker THEN
        DROP FUNCTION auth.jwt();
    END IF;
    IF obj_description(to_regclass('auth.users'), 'pg_class') = v_marker THEN
        DROP TABLE auth.users;
    END IF;
    IF obj_description((SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'auth'), 'pg_namespace') = v_marker THEN
        REVOKE ALL ON SCHEMA auth FROM anon, authenticated, service_role;
        DROP SCHEMA auth;
    END IF;

    FOREACH v_role IN ARRAY ARRAY['service_role', 'authenticated', 'anon'] LOOP
        IF shobj_description((SELECT oid FROM pg_catalog.pg_roles WHERE rolname = v_role), 'pg_authid') = v_marker THEN
            BEGIN
                EXECUTE format('DROP ROLE %I', v_role);
            EXCEPTION
                WHEN dependent_objects_still_exist THEN
                    RAISE NOTICE 'role % is still used by another database; left in place', v_role;
                WHEN insufficient_privilege THEN
                    RAISE NOTICE 'role % left in place: the reverting role may not drop roles', v_role;
            END;
        END IF;
    END LOOP;
END
$shim$;

COMMIT;

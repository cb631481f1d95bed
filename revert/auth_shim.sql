-- Revert autodoctor:auth_shim from pg

BEGIN;

-- Drops only what deploy created (the objects carrying its marker comment). Roles are
-- cluster-wide: one still used by another database is left in place, with a notice.
DO $shim$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change auth_shim';
    v_role text;
    v_rows bigint;
BEGIN
    -- auth.users as the shim made it holds the users: their loss needs consent.
    IF obj_description(to_regclass('auth.users'), 'pg_class') = v_marker THEN
        SELECT count(*) INTO v_rows FROM (SELECT FROM auth.users LIMIT 1000001) AS t;
        IF v_rows > 0 AND lower(coalesce(current_setting('autodoctor.allow_data_loss', true), ''))
                              NOT IN ('on', 'true', 'yes', '1') THEN
            RAISE EXCEPTION USING
                ERRCODE = '55000',
                MESSAGE = format('revert refused: it would drop auth.users (%s%s)',
                                 CASE WHEN v_rows > 1000000 THEN 'over 1000000' ELSE v_rows::text END,
                                 CASE WHEN v_rows = 1 THEN ' row' ELSE ' rows' END),
                DETAIL = 'data_loss',
                HINT = 'Nothing of this change was reverted and the data is intact; `sqitch deploy` restores '
                    || 'what was reverted before it. To drop the data anyway, consent explicitly: '
                    || 'PGOPTIONS=''-c autodoctor.allow_data_loss=on'' sqitch revert';
        END IF;
        IF v_rows > 0 THEN
            RAISE WARNING 'autodoctor.allow_data_loss is on: dropping auth.users (% rows)', v_rows;
        END IF;
    END IF;
    -- Never CASCADE: what others built on auth (their views, keys, functions) keeps the
    -- objects it uses in place.
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
    EXCEPTION WHEN dependent_objects_still_exist THEN
        RAISE NOTICE 'schema auth left in place: objects that are not the package''s use it';
    END;

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

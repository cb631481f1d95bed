-- Verify autodoctor:extensions on pg

BEGIN;

DO $$
DECLARE
    v_schema name;
BEGIN
    SELECT n.nspname INTO STRICT v_schema
      FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'postgis';
    EXECUTE format('SELECT %1$I.st_makepoint(0, 0)::%1$I.geography', v_schema);
    ASSERT has_schema_privilege('authenticated', v_schema, 'usage'),
        format('authenticated must have USAGE on schema %I (PostGIS)', v_schema);
    ASSERT has_schema_privilege('service_role', v_schema, 'usage'),
        format('service_role must have USAGE on schema %I (PostGIS)', v_schema);
END
$$;

ROLLBACK;

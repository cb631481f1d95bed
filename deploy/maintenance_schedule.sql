-- Deploy autodoctor:maintenance_schedule to pg
-- requires: run_maintenance

BEGIN;

-- Schedules run_maintenance() every minute with pg_cron, where pg_cron can run here:
-- the extension is installed, preloaded, and this is its database (cron.database_name).
-- Anywhere else this change does nothing (the worker runs maintenance on an interval
-- instead), and says so. pg_cron keeps its own schema `cron`; it is created only if
-- missing and then marked, so revert drops only what this change created.
DO $cron$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change maintenance_schedule';
    v_cron_db text;
    v_preload text;
BEGIN
    -- Both settings are readable only by superusers and pg_read_all_settings members: a
    -- role that may not read them cannot create pg_cron either, so it schedules nothing.
    BEGIN
        v_cron_db := current_setting('cron.database_name', true);
        v_preload := current_setting('shared_preload_libraries');
    EXCEPTION WHEN insufficient_privilege THEN
        v_cron_db := NULL;
        v_preload := '';
    END;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pg_cron')
       OR v_cron_db IS DISTINCT FROM current_database()
       OR position('pg_cron' IN v_preload) = 0 THEN
        RAISE NOTICE 'pg_cron is not available in this database; run autodoctor.run_maintenance() '
                     'from a scheduler (autodoctor-db worker does it on an interval)';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        -- As on Supabase: its functions in pg_catalog (its tables in schema cron), never public.
        CREATE EXTENSION pg_cron WITH SCHEMA pg_catalog;
        EXECUTE format('COMMENT ON EXTENSION pg_cron IS %L', v_marker);
    END IF;
    PERFORM cron.schedule('autodoctor-maintenance', '* * * * *', 'SELECT autodoctor.run_maintenance()');
END
$cron$;

COMMIT;

-- Verify autodoctor:maintenance_schedule on pg

BEGIN;

DO $$
DECLARE
    v_cron_db text;
BEGIN
    -- As deploy: a role that may not read the setting scheduled nothing; nothing to verify.
    BEGIN
        v_cron_db := current_setting('cron.database_name', true);
    EXCEPTION WHEN insufficient_privilege THEN
        RETURN;
    END;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')
       AND v_cron_db = current_database() THEN
        ASSERT EXISTS (SELECT 1 FROM cron.job WHERE jobname = 'autodoctor-maintenance'
                         AND command = 'SELECT autodoctor.run_maintenance()'),
            'the maintenance job must be scheduled';
    END IF;
END
$$;

ROLLBACK;

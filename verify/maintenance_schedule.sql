-- Verify autodoctor:maintenance_schedule on pg

BEGIN;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')
       AND current_setting('cron.database_name', true) = current_database() THEN
        ASSERT EXISTS (SELECT 1 FROM cron.job WHERE jobname = 'autodoctor-maintenance'
                         AND command = 'SELECT autodoctor.run_maintenance()'),
            'the maintenance job must be scheduled';
    END IF;
END
$$;

ROLLBACK;

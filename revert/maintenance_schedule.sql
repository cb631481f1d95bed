-- Revert autodoctor:maintenance_schedule from pg

BEGIN;

DO $cron$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change maintenance_schedule';
BEGIN
    IF to_regclass('cron.job') IS NOT NULL THEN
        PERFORM cron.unschedule(j.jobid) FROM cron.job j WHERE j.jobname = 'autodoctor-maintenance';
    END IF;
    IF obj_description((SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'pg_cron'), 'pg_extension') = v_marker THEN
        DROP EXTENSION pg_cron;
    END IF;
END
$cron$;

COMMIT;

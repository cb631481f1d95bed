-- Revert autodoctor:maintenance_schedule from pg

BEGIN;

DO $cron$
DECLARE
    v_marker CONSTANT text := 'autodoctor-db: created by sqitch change maintenance_schedule';
BEGIN
    IF to_regclass('cron.job') IS NOT NULL THEN
        PERFORM cron.unschedule(j.jobid) FROM cron.job j WHERE j.jobname = 'autodoctor-maintenance';
    END IF;
    -- pg_cron goes only if this change created it and no job is left in it: other teams'
    -- jobs, and pg_cron itself where an administrator installed it, always stay.
    IF obj_description((SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'pg_cron'), 'pg_extension') = v_marker THEN
        IF EXISTS (SELECT 1 FROM cron.job) THEN
            RAISE NOTICE 'pg_cron left in place: cron.job holds jobs that are not the package''s';
        ELSE
            DROP EXTENSION pg_cron;
        END IF;
    END IF;
END
$cron$;

COMMIT;

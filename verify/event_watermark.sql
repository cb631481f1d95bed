-- Verify autodoctor:event_watermark on pg

BEGIN;

SELECT pg_catalog.has_function_privilege('autodoctor.event_watermark()', 'EXECUTE');

DO $$
BEGIN
    ASSERT autodoctor.event_watermark()
           BETWEEN pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
               AND pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
        'event_watermark() must lie between the snapshot''s xmin and xmax';
END
$$;

ROLLBACK;

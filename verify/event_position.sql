-- Verify autodoctor:event_position on pg

BEGIN;

SELECT pg_catalog.has_function_privilege('autodoctor._event_position()', 'EXECUTE');

DO $$
BEGIN
    ASSERT autodoctor.event_watermark()
           BETWEEN pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())
               AND pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot()),
        'event_watermark() must lie between the snapshot''s xmin and xmax';
    ASSERT (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid)
              FROM pg_catalog.pg_attrdef d
              JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
             WHERE d.adrelid = 'autodoctor.session_events'::pg_catalog.regclass
               AND a.attname = 'txid') = 'autodoctor._event_position()',
        'session_events.txid must default to autodoctor._event_position()';
END
$$;

ROLLBACK;

-- Revert autodoctor:event_watermark from pg

BEGIN;

DROP FUNCTION autodoctor.event_watermark();

COMMIT;

-- Revert autodoctor:realtime_broadcast from pg

BEGIN;

-- The trigger and the policies on realtime.messages;
-- Realtime's own objects and messages stay as they are.
SELECT autodoctor.disable_realtime();

DROP FUNCTION autodoctor.disable_realtime();
DROP FUNCTION autodoctor.enable_realtime();

COMMIT;

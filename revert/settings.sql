-- Revert autodoctor:settings from pg

BEGIN;

DROP FUNCTION autodoctor._request_ttl();
DROP TABLE autodoctor.settings;

COMMIT;

-- Revert autodoctor:mechanic_load from pg

BEGIN;

DROP TRIGGER sessions_track_mechanic_load ON autodoctor.sessions;
DROP FUNCTION autodoctor._track_mechanic_load();
ALTER TABLE autodoctor.mechanics DROP COLUMN active_sessions;

COMMIT;

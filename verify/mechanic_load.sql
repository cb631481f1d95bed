-- Verify autodoctor:mechanic_load on pg

BEGIN;

SELECT active_sessions FROM autodoctor.mechanics WHERE FALSE;

DO $$
BEGIN
    ASSERT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                   WHERE tgname = 'sessions_track_mechanic_load'
                     AND tgrelid = 'autodoctor.sessions'::regclass),
        'the load trigger must exist';
END
$$;

ROLLBACK;

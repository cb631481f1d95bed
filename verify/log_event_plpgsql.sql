-- Verify autodoctor:log_event_plpgsql on pg

BEGIN;

DO $$
BEGIN
    ASSERT (SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
             WHERE p.oid = 'autodoctor._log_event(text, uuid, uuid, uuid, text, text, autodoctor.session_type, text, jsonb)'::regprocedure)
           = 'plpgsql',
        '_log_event must be PL/pgSQL';
END
$$;

ROLLBACK;

-- Verify autodoctor:realtime_broadcast on pg

BEGIN;

DO $$
DECLARE
    v_trigger boolean := EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                                  WHERE tgrelid = 'autodoctor.session_events'::regclass
                                    AND tgname = 'session_events_broadcast');
BEGIN
    ASSERT to_regprocedure('autodoctor.enable_realtime()') IS NOT NULL, 'enable_realtime() must exist';
    ASSERT to_regprocedure('autodoctor.disable_realtime()') IS NOT NULL, 'disable_realtime() must exist';
    -- Realtime's schema present at deploy: broadcasting, with the join policies.
    IF to_regclass('realtime.messages') IS NOT NULL
       AND to_regprocedure('realtime.send(jsonb, text, text, boolean)') IS NOT NULL
       AND to_regprocedure('realtime.topic()') IS NOT NULL THEN
        ASSERT v_trigger, 'session_events_broadcast must exist where Realtime does (SELECT autodoctor.enable_realtime())';
        ASSERT (SELECT count(*) FROM pg_catalog.pg_policy
                 WHERE polrelid = 'realtime.messages'::regclass
                   AND polname IN ('autodoctor_join', 'autodoctor_join_only', 'autodoctor_no_anon',
                                   'autodoctor_no_client_insert', 'autodoctor_no_client_update')) = 5,
            'the join policies on realtime.messages must exist where the trigger does';
    ELSE
        ASSERT NOT v_trigger, 'session_events_broadcast must not exist without Realtime''s schema';
    END IF;
END
$$;

ROLLBACK;

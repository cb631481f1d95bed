-- Verify autodoctor:session_fsm on pg

BEGIN;

DO $$
BEGIN
    ASSERT autodoctor._transition_allowed('waiting', 'live'), 'waiting -> live must be allowed';
    ASSERT NOT autodoctor._transition_allowed('completed', 'live'), 'completed must be final';
    ASSERT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                   WHERE tgname = 'sessions_enforce_fsm'
                     AND tgrelid = 'autodoctor.sessions'::regclass),
        'the state machine trigger must exist';
END
$$;

ROLLBACK;

-- Verify autodoctor:transition_session on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('authenticated',
        'autodoctor.transition_session(uuid, autodoctor.session_status)', 'execute'),
        'authenticated must be able to execute transition_session';
END
$$;

ROLLBACK;

-- Verify autodoctor:accept_session_request on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('authenticated', 'autodoctor.accept_session_request(uuid)', 'execute'),
        'authenticated must be able to execute accept_session_request';
    ASSERT NOT has_function_privilege('anon', 'autodoctor.accept_session_request(uuid)', 'execute'),
        'anon must not execute accept_session_request';
END
$$;

ROLLBACK;

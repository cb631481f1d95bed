-- Verify autodoctor:create_session_request on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('authenticated',
        'autodoctor.create_session_request(autodoctor.session_type, text, text, text)', 'execute'),
        'authenticated must be able to execute create_session_request';
    ASSERT NOT has_function_privilege('anon',
        'autodoctor.create_session_request(autodoctor.session_type, text, text, text)', 'execute'),
        'anon must not execute create_session_request';
END
$$;

ROLLBACK;

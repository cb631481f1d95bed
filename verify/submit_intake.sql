-- Verify autodoctor:submit_intake on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('authenticated',
        'autodoctor.submit_intake(autodoctor.session_type, text, jsonb, text, double precision, double precision, text)', 'execute'),
        'authenticated must be able to execute submit_intake';
    ASSERT NOT has_function_privilege('anon',
        'autodoctor.submit_intake(autodoctor.session_type, text, jsonb, text, double precision, double precision, text)', 'execute'),
        'anon must not execute submit_intake';
    ASSERT pg_get_functiondef('autodoctor.submit_intake(autodoctor.session_type, text, jsonb, text, double precision, double precision, text)'::regprocedure)
           LIKE '%v_intake.vehicle_make IS DISTINCT FROM v_make%',
        'a reused key with another vehicle must be refused';
END
$$;

ROLLBACK;

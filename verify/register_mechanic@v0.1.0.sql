-- Verify autodoctor:register_mechanic on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role',
        'autodoctor.register_mechanic(uuid, autodoctor.session_type[], double precision, double precision, numeric, integer)', 'execute'),
        'service_role must be able to execute register_mechanic';
    ASSERT NOT has_function_privilege('authenticated',
        'autodoctor.register_mechanic(uuid, autodoctor.session_type[], double precision, double precision, numeric, integer)', 'execute'),
        'authenticated must not execute register_mechanic';
END
$$;

ROLLBACK;

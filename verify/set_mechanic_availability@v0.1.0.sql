-- Verify autodoctor:set_mechanic_availability on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('authenticated',
        'autodoctor.set_mechanic_availability(boolean, double precision, double precision)', 'execute'),
        'authenticated must be able to execute set_mechanic_availability';
END
$$;

ROLLBACK;

-- Verify autodoctor:service_radius_antipode on pg

BEGIN;

DO $$
BEGIN
    ASSERT pg_get_constraintdef((SELECT c.oid FROM pg_catalog.pg_constraint c
                                  WHERE c.conrelid = 'autodoctor.mechanics'::regclass
                                    AND c.conname = 'mechanics_service_radius_km_check'))
           LIKE '%20040%',
        'a service radius must be able to reach the antipode';
END
$$;

ROLLBACK;

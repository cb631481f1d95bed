-- Verify autodoctor:plans on pg

BEGIN;

SELECT code, name, allowed_types, active, created_at FROM autodoctor.plans WHERE FALSE;

DO $$
BEGIN
    ASSERT (SELECT allowed_types @> enum_range(NULL::autodoctor.session_type)
              FROM autodoctor.plans WHERE code = 'free'),
        'plan free must exist and allow every session type';
END
$$;

ROLLBACK;

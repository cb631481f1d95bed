-- Verify autodoctor:profiles on pg

BEGIN;

SELECT id, full_name, created_at, updated_at FROM autodoctor.profiles WHERE FALSE;

DO $$
BEGIN
    ASSERT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                   WHERE tgname = 'autodoctor_on_auth_user_created'
                     AND tgrelid = 'auth.users'::regclass),
        'the profile trigger on auth.users must exist';
END
$$;

ROLLBACK;

-- Revert autodoctor:profiles from pg

BEGIN;

DROP TRIGGER autodoctor_on_auth_user_created ON auth.users;
DROP FUNCTION autodoctor._handle_new_user();
DROP TABLE autodoctor.profiles;

COMMIT;

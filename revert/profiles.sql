-- Revert autodoctor:profiles from pg

BEGIN;

-- Refuses while the table holds rows, unless autodoctor.allow_data_loss = on.
DO $guard$ BEGIN PERFORM autodoctor._guard_data_loss('autodoctor.profiles'); END $guard$;

DROP TRIGGER autodoctor_on_auth_user_created ON auth.users;
DROP FUNCTION autodoctor._handle_new_user();
DROP TABLE autodoctor.profiles;

COMMIT;

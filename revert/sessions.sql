-- Revert autodoctor:sessions from pg

BEGIN;

-- Refuses while the table holds rows, unless autodoctor.allow_data_loss = on.
DO $guard$ BEGIN PERFORM autodoctor._guard_data_loss('autodoctor.sessions'); END $guard$;

ALTER TABLE autodoctor.session_requests DROP CONSTRAINT session_requests_session_id_fkey;
DROP TABLE autodoctor.sessions;

COMMIT;

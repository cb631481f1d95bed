-- Revert autodoctor:session_requests from pg

BEGIN;

-- Refuses while the table holds rows, unless autodoctor.allow_data_loss = on.
DO $guard$ BEGIN PERFORM autodoctor._guard_data_loss('autodoctor.session_requests'); END $guard$;

DROP TABLE autodoctor.session_requests;

COMMIT;

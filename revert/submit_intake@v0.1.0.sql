-- Revert autodoctor:submit_intake from pg

BEGIN;

DROP FUNCTION autodoctor.submit_intake(autodoctor.session_type, text, jsonb, text, double precision, double precision, text);

COMMIT;

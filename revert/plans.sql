-- Revert autodoctor:plans from pg

BEGIN;

DROP FUNCTION autodoctor._require_plan(autodoctor.session_type, text);
DROP TABLE autodoctor.plans;

COMMIT;

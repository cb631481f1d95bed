-- Revert autodoctor:plans from pg

BEGIN;

-- The three plans deploy seeds are the package's; any other plan is someone's data.
DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM autodoctor.plans WHERE code NOT IN ('free', 'standard', 'premium')) THEN
        PERFORM autodoctor._guard_data_loss('autodoctor.plans');
    END IF;
END
$guard$;

DROP FUNCTION autodoctor._require_plan(autodoctor.session_type, text);
DROP TABLE autodoctor.plans;

COMMIT;

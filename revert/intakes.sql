-- Revert autodoctor:intakes from pg

BEGIN;

-- Refuses while the table holds rows, unless autodoctor.allow_data_loss = on.
DO $guard$ BEGIN PERFORM autodoctor._guard_data_loss('autodoctor.intakes'); END $guard$;

DROP TABLE autodoctor.intakes;

COMMIT;

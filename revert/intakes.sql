-- Revert autodoctor:intakes from pg

BEGIN;

DROP TABLE autodoctor.intakes;

COMMIT;

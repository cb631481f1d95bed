-- Revert autodoctor:mechanics from pg

BEGIN;

DROP TABLE autodoctor.mechanics;

COMMIT;

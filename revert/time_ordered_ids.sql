-- Revert autodoctor:time_ordered_ids from pg

BEGIN;

ALTER TABLE autodoctor.session_requests ALTER COLUMN id SET DEFAULT gen_random_uuid();
ALTER TABLE autodoctor.sessions ALTER COLUMN id SET DEFAULT gen_random_uuid();
ALTER TABLE autodoctor.intakes ALTER COLUMN id SET DEFAULT gen_random_uuid();
DROP FUNCTION autodoctor._uuid_v7();

COMMIT;

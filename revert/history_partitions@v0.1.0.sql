-- Revert autodoctor:history_partitions from pg

BEGIN;

-- The partitions go with their tables (reverted by their own changes); only the
-- maintenance function is this change's.
DROP FUNCTION autodoctor._maintain_partitions(integer);

COMMIT;

-- Revert autodoctor:outbox_worker from pg

BEGIN;

DROP FUNCTION autodoctor.complete_notification(bigint, text, integer);
DROP FUNCTION autodoctor.claim_notifications(integer);

COMMIT;

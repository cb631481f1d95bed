-- Revert autodoctor:notification_outbox from pg

BEGIN;

DROP FUNCTION autodoctor._queue_new_request_emails(uuid);
DROP TABLE autodoctor.notification_outbox;

COMMIT;

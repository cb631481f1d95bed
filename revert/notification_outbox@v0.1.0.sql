-- Revert autodoctor:notification_outbox from pg

BEGIN;

-- Refuses while the table holds rows, unless autodoctor.allow_data_loss = on.
DO $guard$ BEGIN PERFORM autodoctor._guard_data_loss('autodoctor.notification_outbox'); END $guard$;

DROP FUNCTION autodoctor._queue_new_request_emails(uuid);
DROP TABLE autodoctor.notification_outbox;

COMMIT;

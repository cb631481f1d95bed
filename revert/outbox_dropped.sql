-- Revert autodoctor:outbox_dropped from pg

BEGIN;

-- The dropped e-mails stay, as failed ones with the reason in last_error (the older
-- constraint knows no 'dropped').
UPDATE autodoctor.notification_outbox
   SET status = 'failed', last_error = coalesce(last_error, 'dropped: request no longer pending')
 WHERE status = 'dropped';
ALTER TABLE autodoctor.notification_outbox DROP CONSTRAINT notification_outbox_status_check;
ALTER TABLE autodoctor.notification_outbox
    ADD CONSTRAINT notification_outbox_status_check CHECK (status IN ('pending', 'sent', 'failed'));
COMMENT ON COLUMN autodoctor.notification_outbox.status IS NULL;

COMMIT;

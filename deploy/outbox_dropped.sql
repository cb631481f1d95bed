-- Deploy autodoctor:outbox_dropped to pg
-- requires: outbox_worker@v0.1.0

BEGIN;

-- A new-request e-mail whose request was accepted, cancelled or expired before the worker
-- got to it is not sent: claim_notifications marks it 'dropped' instead. Every existing row
-- satisfied the stricter old check, so the new one is added NOT VALID (no scan under the
-- table lock: it holds for every new or changed row; VALIDATE CONSTRAINT can be run at any
-- time outside a deploy, and changes nothing).
ALTER TABLE autodoctor.notification_outbox DROP CONSTRAINT notification_outbox_status_check;
ALTER TABLE autodoctor.notification_outbox
    ADD CONSTRAINT notification_outbox_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'dropped')) NOT VALID;

COMMENT ON COLUMN autodoctor.notification_outbox.status IS
    'pending (due at next_attempt_at; leased while a worker sends it), sent, failed (after '
    'max_attempts), or dropped (a new-request e-mail whose request was no longer pending).';

COMMIT;

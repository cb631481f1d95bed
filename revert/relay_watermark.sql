-- Revert autodoctor:relay_watermark from pg

BEGIN;

-- Below this change the relay cannot keep its promise: back to transaction mode (each
-- event's own transaction NOTIFYs), the trigger and the setting agreeing.
UPDATE autodoctor.settings s SET notify_mode = 'transaction', updated_at = now()
 WHERE s.id AND s.notify_mode <> 'transaction';
ALTER TABLE autodoctor.session_events ENABLE TRIGGER session_events_notify;
ALTER TABLE autodoctor.relay_state DROP COLUMN last_txid;

COMMIT;

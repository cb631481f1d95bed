-- Verify autodoctor:relay_watermark on pg

BEGIN;

SELECT last_txid, last_event_id FROM autodoctor.relay_state WHERE false;

DO $$
BEGIN
    ASSERT (SELECT s.notify_mode = 'relay' FROM autodoctor.settings s WHERE s.id)
           = (SELECT t.tgenabled = 'D' FROM pg_catalog.pg_trigger t
               WHERE t.tgrelid = 'autodoctor.session_events'::regclass
                 AND t.tgname = 'session_events_notify'),
        'the NOTIFY trigger must be disabled exactly in relay mode';
END
$$;

ROLLBACK;

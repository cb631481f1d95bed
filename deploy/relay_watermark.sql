-- Deploy autodoctor:relay_watermark to pg
-- requires: notify_relay

BEGIN;

-- relay_events() marks its position by (transaction id, event id), the order in which the
-- event followers read the log, instead of by event id alone: an event whose transaction
-- commits after a later event was relayed is then still announced. last_txid starts at
-- the oldest transaction still running, so nothing logged before is announced again
-- (events of transactions running now may be announced once more: never lost).
ALTER TABLE autodoctor.relay_state
    ADD COLUMN last_txid xid8 NOT NULL DEFAULT '0';

COMMENT ON COLUMN autodoctor.relay_state.last_txid IS
    'Relay mode: with last_event_id, the (transaction id, event id) already announced.';

UPDATE autodoctor.relay_state s
   SET last_txid = pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()),
       last_event_id = 0
 WHERE s.id;

-- The per-event NOTIFY trigger follows the setting (a revert and redeploy of v0.1.0 in
-- relay mode left it enabled while the setting still said relay).
DO $sync$
BEGIN
    IF (SELECT s.notify_mode FROM autodoctor.settings s WHERE s.id) = 'relay' THEN
        ALTER TABLE autodoctor.session_events DISABLE TRIGGER session_events_notify;
    ELSE
        ALTER TABLE autodoctor.session_events ENABLE TRIGGER session_events_notify;
    END IF;
END
$sync$;

COMMIT;

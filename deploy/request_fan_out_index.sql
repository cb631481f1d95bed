-- Deploy autodoctor:request_fan_out_index to pg
-- requires: session_requests
-- requires: outbox_worker

BEGIN;

-- The pending requests whose new-request e-mails are not queued yet (notification_sent_at
-- IS NULL), by expiry: the fan-out (autodoctor._fan_out_new_requests, run by
-- claim_notifications) takes them from here, so it never reads the pending queue of
-- requests already fanned out. A request leaves the index when the fan-out stamps
-- notification_sent_at or when it stops being pending, so the index holds the requests of
-- the last worker poll or so. Keyed by expires_at (created_at plus the request TTL, hence
-- the same order as oldest first), so that the fan-out's expires_at > now() is an index
-- condition: a request past its expiry that expire_stale_requests() has not swept yet is
-- never read.
--
-- Built in the change's transaction (CREATE INDEX CONCURRENTLY cannot run in one), as
-- pending_market_index is: a SHARE lock on session_requests until COMMIT while the heap is
-- scanned once; the index itself holds only the pending requests not e-mailed yet.
CREATE INDEX session_requests_fan_out_idx
    ON autodoctor.session_requests (expires_at)
    WHERE status = 'pending' AND notification_sent_at IS NULL;

COMMENT ON INDEX autodoctor.session_requests_fan_out_idx IS
    'Pending requests whose new-request e-mails are not queued yet, by expiry: the '
    'fan-out''s queue (autodoctor._fan_out_new_requests).';

COMMIT;

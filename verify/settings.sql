-- Verify autodoctor:settings on pg

BEGIN;

SELECT id, request_ttl, new_request_email_limit, event_retention, outbox_retention, notify_mode, updated_at FROM autodoctor.settings WHERE FALSE;

DO $$
BEGIN
    ASSERT autodoctor._request_ttl() > interval '0', 'request TTL must be positive';
END
$$;

ROLLBACK;

-- Verify autodoctor:notification_outbox on pg

BEGIN;

SELECT id, created_at, kind, mechanic_id, recipient, request_id, session_id, status,
       attempts, next_attempt_at, last_error, sent_at
  FROM autodoctor.notification_outbox WHERE FALSE;

DO $$
BEGIN
    ASSERT to_regprocedure('autodoctor._queue_new_request_emails(uuid)') IS NOT NULL,
        '_queue_new_request_emails must exist';
END
$$;

ROLLBACK;

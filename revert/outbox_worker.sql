-- Deploy autodoctor:outbox_worker to pg
-- requires: notification_outbox

BEGIN;

-- claim_notifications: the worker takes a batch of due e-mails.
-- FOR UPDATE SKIP LOCKED: the rows stay locked by the caller's transaction while it sends
-- them, so parallel workers never take the same row; a worker that dies mid-batch releases
-- its rows (at-least-once: a mail sent just before a crash may be sent again).
CREATE OR REPLACE FUNCTION autodoctor.claim_notifications(
    batch_size integer DEFAULT 10
)
RETURNS SETOF autodoctor.notification_outbox
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
BEGIN
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'batch_size must be between 1 and 1000',
            DETAIL = 'invalid_batch_size';
    END IF;
    RETURN QUERY
        SELECT o.*
          FROM autodoctor.notification_outbox o
         WHERE o.status = 'pending' AND o.next_attempt_at <= now()
         ORDER BY o.next_attempt_at, o.id
         LIMIT batch_size
           FOR UPDATE SKIP LOCKED;
END
$$;

COMMENT ON FUNCTION autodoctor.claim_notifications(integer) IS
    'Service role (the worker): locks and returns up to batch_size due e-mails, oldest first. '
    'Errors: 22023 invalid_batch_size.';
REVOKE ALL ON FUNCTION autodoctor.claim_notifications(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.claim_notifications(integer) TO service_role;

-- complete_notification: records one delivery attempt of an e-mail.
-- Without an error it is sent; with one, it is retried with exponential backoff (30 s,
-- 1 min, 2 min, ... capped at 1 h) until max_attempts, then marked failed. Never deleted.
CREATE OR REPLACE FUNCTION autodoctor.complete_notification(
    notification_id bigint,
    error text DEFAULT NULL,
    max_attempts integer DEFAULT 8
)
RETURNS autodoctor.notification_outbox
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_row autodoctor.notification_outbox;
BEGIN
    IF max_attempts IS NULL OR max_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'max_attempts must be between 1 and 100',
            DETAIL = 'invalid_max_attempts';
    END IF;
    UPDATE autodoctor.notification_outbox o
       SET attempts = o.attempts + 1,
           status = CASE WHEN complete_notification.error IS NULL THEN 'sent'
                         WHEN o.attempts + 1 >= complete_notification.max_attempts THEN 'failed'
                         ELSE 'pending' END,
           sent_at = CASE WHEN complete_notification.error IS NULL THEN now() ELSE o.sent_at END,
           last_error = left(complete_notification.error, 2000),
           next_attempt_at = CASE WHEN complete_notification.error IS NULL THEN o.next_attempt_at
                                  ELSE now() + least(interval '1 hour',
                                                     interval '30 seconds' * power(2, o.attempts))
                             END
     WHERE o.id = complete_notification.notification_id AND o.status = 'pending'
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM autodoctor.notification_outbox o
                    WHERE o.id = complete_notification.notification_id) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT409', MESSAGE = 'notification is no longer pending',
                DETAIL = 'notification_not_pending';
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = 'PT404', MESSAGE = 'notification not found',
            DETAIL = 'notification_not_found';
    END IF;
    RETURN v_row;
END
$$;

COMMENT ON FUNCTION autodoctor.complete_notification(bigint, text, integer) IS
    'Service role (the worker): records a delivery attempt: sent, or retried with backoff, '
    'or failed after max_attempts. Errors: PT404 notification_not_found; PT409 '
    'notification_not_pending; 22023 invalid_max_attempts.';
REVOKE ALL ON FUNCTION autodoctor.complete_notification(bigint, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.complete_notification(bigint, text, integer) TO service_role;

-- The fan-out belongs to this change (create_session_request and submit_intake, reverted
-- before it, queue their e-mails in the request's transaction again).
DROP FUNCTION autodoctor._fan_out_new_requests(integer);

COMMIT;

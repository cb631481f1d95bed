-- Deploy autodoctor:outbox_worker to pg
-- requires: outbox_worker@v0.1.0
-- requires: outbox_dropped

BEGIN;

-- _fan_out_new_requests: queues the new-request e-mails of up to batch_size requests,
-- off the request's transaction. create_session_request and submit_intake only commit the
-- request (notification_sent_at NULL); this step, run by claim_notifications before it
-- leases, takes the pending, unexpired requests whose e-mails are not queued yet
-- (session_requests_fan_out_idx), soonest to expire (that is, oldest) first, FOR NO KEY
-- UPDATE SKIP LOCKED (two workers never fan out the same request, and neither waits for
-- the other or for a transaction writing the request), and queues each one's e-mails with
-- _queue_new_request_emails: the same mechanics, order and cap as when they were queued in
-- the request's transaction. Each request is then stamped notification_sent_at, also when
-- no mechanic was eligible, so it is fanned out once and never scanned again. A request
-- accepted, cancelled or expired before its fan-out gets no e-mail. Returns how many
-- requests it fanned out.
CREATE OR REPLACE FUNCTION autodoctor._fan_out_new_requests(
    batch_size integer
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
    v_id uuid;
    v_done integer := 0;
BEGIN
    FOR v_id IN
        SELECT r.id
          FROM autodoctor.session_requests r
         WHERE r.status = 'pending' AND r.notification_sent_at IS NULL
           AND r.expires_at > now()
         ORDER BY r.expires_at
         LIMIT _fan_out_new_requests.batch_size
           FOR NO KEY UPDATE OF r SKIP LOCKED
    LOOP
        IF autodoctor._queue_new_request_emails(v_id) = 0 THEN
            -- Nobody to e-mail (_queue_new_request_emails stamps only when it queued).
            UPDATE autodoctor.session_requests r
               SET notification_sent_at = now()
             WHERE r.id = v_id;
        END IF;
        v_done := v_done + 1;
    END LOOP;
    RETURN v_done;
END
$$;

COMMENT ON FUNCTION autodoctor._fan_out_new_requests(integer) IS
    'Private (claim_notifications): queues the new-request e-mails of up to batch_size '
    'pending requests not fanned out yet, and stamps their notification_sent_at.';
REVOKE ALL ON FUNCTION autodoctor._fan_out_new_requests(integer) FROM PUBLIC;

-- claim_notifications: the worker leases a batch of due e-mails.
-- First it fans out up to batch_size new requests (_fan_out_new_requests, above): their
-- e-mails are queued in this transaction and due at once, so they are leased by this very
-- call when the batch has room, and a request is e-mailed within one worker poll.
-- The rows are taken FOR UPDATE SKIP LOCKED (parallel workers never take the same row) and
-- leased: next_attempt_at moves five minutes ahead, and the call's transaction commits at
-- once, so no lock is held while the worker talks to the mail server. The worker then
-- records each attempt with complete_notification; a lease that runs out (a worker that
-- died, or took longer than five minutes) makes the e-mail due again (at-least-once: a
-- mail sent just before a crash may be sent again). A new-request e-mail whose request was
-- accepted, cancelled or expired meanwhile is marked dropped instead, never sent.
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
    PERFORM autodoctor._fan_out_new_requests(batch_size);
    RETURN QUERY
        WITH due AS (
            SELECT o.id, o.created_at,
                   -- A new-request e-mail whose request is no longer open to accept.
                   (o.kind = 'new_request' AND NOT EXISTS (
                        SELECT 1 FROM autodoctor.session_requests r
                         WHERE r.id = o.request_id AND r.status = 'pending'
                           AND r.expires_at > now())) AS stale
              FROM autodoctor.notification_outbox o
             WHERE o.status = 'pending' AND o.next_attempt_at <= now()
             ORDER BY o.next_attempt_at, o.id
             LIMIT batch_size
               FOR UPDATE OF o SKIP LOCKED
        ), dropped AS (
            UPDATE autodoctor.notification_outbox o
               SET status = 'dropped', last_error = 'request no longer pending'
              FROM due
             WHERE due.stale AND o.id = due.id AND o.created_at = due.created_at
            RETURNING o.id
        )
        UPDATE autodoctor.notification_outbox o
           SET next_attempt_at = now() + interval '5 minutes'
          FROM due
         WHERE NOT due.stale AND o.id = due.id AND o.created_at = due.created_at
        RETURNING o.*;
END
$$;

COMMENT ON FUNCTION autodoctor.claim_notifications(integer) IS
    'Service role (the worker): queues the e-mails of up to batch_size new requests, then '
    'leases up to batch_size due e-mails for five minutes, oldest first, and returns them; '
    'record each attempt with complete_notification. '
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

COMMIT;

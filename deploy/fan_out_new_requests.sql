-- Deploy autodoctor:fan_out_new_requests to pg
-- requires: outbox_worker

BEGIN;

-- fan_out_new_requests: the new-request e-mail fan-out as a call of its own. It queues the
-- e-mails of up to batch_size pending requests not fanned out yet (the same step
-- claim_notifications runs first: _fan_out_new_requests) and returns how many requests it
-- fanned out. The worker calls it in transactions of their own, a few requests each, until
-- it returns less than it asked for, and only then claims: a fan-out writes, so while its
-- transaction runs, event_watermark() (and with it every follower and the relay) waits
-- for it; many short transactions hold delivery back by milliseconds where one claim
-- fanning out a backlog held it for as long as the whole backlog took.
CREATE FUNCTION autodoctor.fan_out_new_requests(
    batch_size integer DEFAULT 5
)
RETURNS integer
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
    RETURN autodoctor._fan_out_new_requests(batch_size);
END
$$;

COMMENT ON FUNCTION autodoctor.fan_out_new_requests(integer) IS
    'Service role (the worker): queues the new-request e-mails of up to batch_size pending '
    'requests not fanned out yet; returns how many requests it fanned out. '
    'Errors: 22023 invalid_batch_size.';
REVOKE ALL ON FUNCTION autodoctor.fan_out_new_requests(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION autodoctor.fan_out_new_requests(integer) TO service_role;

COMMIT;

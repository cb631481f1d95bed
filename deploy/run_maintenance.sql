-- Deploy autodoctor:run_maintenance to pg
-- requires: expire_stale_requests
-- requires: cancel_orphaned_sessions
-- requires: auto_assign_orphaned_sessions
-- requires: convert_orphaned_sessions
-- requires: history_partitions

BEGIN;

-- run_maintenance: every repair in one call, for a scheduler (pg_cron or the worker).
-- In order: expire stale requests; cancel orphans older than a day; auto-assign the rest
-- where an eligible mechanic is free; convert what remains into pending requests; then
-- keep the history tables' partitions (months ahead created, months past retention
-- dropped). After it, no session in pending or live lacks both a mechanic and a pending
-- request.
CREATE OR REPLACE FUNCTION autodoctor.run_maintenance()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_expired integer;
    v_cancelled integer;
    v_assigned integer := 0;
    v_batch integer;
    v_converted integer;
    v_partitions jsonb;
BEGIN
    v_expired := autodoctor.expire_stale_requests();
    v_cancelled := autodoctor.cancel_orphaned_sessions(interval '1 day');
    -- Auto-assign in bounded batches until a batch assigns nothing.
    LOOP
        v_batch := autodoctor.auto_assign_orphaned_sessions(1000);
        v_assigned := v_assigned + v_batch;
        EXIT WHEN v_batch = 0;
    END LOOP;
    v_converted := autodoctor.convert_orphaned_sessions();
    v_partitions := autodoctor._maintain_partitions();
    RETURN jsonb_build_object(
        'expired_requests', v_expired,
        'cancelled_orphans', v_cancelled,
        'auto_assigned', v_assigned,
        'converted_orphans', v_converted,
        'partitions', v_partitions,
        'duration_ms', round((extract(epoch FROM clock_timestamp() - v_started) * 1000)::numeric, 1)
    );
END
$$;

COMMENT ON FUNCTION autodoctor.run_maintenance() IS
    'Service role / pg_cron: expire stale requests, cancel orphans older than a day, '
    'auto-assign orphans, convert the rest into requests; returns a count per step.';
REVOKE ALL ON FUNCTION autodoctor.run_maintenance() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.run_maintenance() TO service_role;

COMMIT;

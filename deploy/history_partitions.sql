-- Deploy autodoctor:history_partitions to pg
-- requires: history_partitions@v0.1.0

BEGIN;

-- _maintain_partitions: keeps the history tables bounded.
-- Creates the monthly partitions of session_events and notification_outbox from this
-- month to months_ahead months ahead (so an insert always finds its partition, even if
-- maintenance stops for a while), and drops the months wholly older than the retention
-- settings; an outbox month still holding a pending e-mail is kept. Dropping a partition
-- is how history leaves: the append-only log itself refuses DELETE.
--
-- Creating or dropping a partition locks its parent table exclusively. Each such statement
-- runs in a subtransaction under a 100 ms lock_timeout: when the lock is not granted in
-- time (a long reader such as pg_dump, a writer holding rows run_maintenance's repairs
-- wait for) the statement is skipped and counted as deferred, to be retried on the next
-- run, and nothing else of the run is undone. So a client write waits at most that long
-- behind it, and it can never deadlock with one (lock_timeout fires well before the
-- deadlock detector's 1 s). Partitions exist twelve months ahead: a run that misses costs
-- nothing. run_maintenance() calls this last, right before it commits, so a lock that was
-- granted is held only for the moment it takes to commit.
CREATE OR REPLACE FUNCTION autodoctor._maintain_partitions(
    months_ahead integer DEFAULT 12
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = ''
AS $$
DECLARE
    v_table text;
    v_month date;
    v_name text;
    v_created integer := 0;
    v_dropped integer := 0;
    v_part record;
    v_retention interval;
    v_pending boolean;
    v_deferred integer := 0;
    v_lock_timeout CONSTANT text := '100ms';
    v_saved text;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['session_events', 'notification_outbox'] LOOP
        FOR i IN 0 .. months_ahead LOOP
            v_month := (date_trunc('month', now()) + make_interval(months => i))::date;
            v_name := format('%s_%s', v_table, to_char(v_month, 'YYYY"m"MM'));
            IF to_regclass(format('autodoctor.%I', v_name)) IS NULL THEN
                v_saved := current_setting('lock_timeout');
                BEGIN
                    PERFORM set_config('lock_timeout', v_lock_timeout, true);
                    EXECUTE format(
                        'CREATE TABLE autodoctor.%I PARTITION OF autodoctor.%I FOR VALUES FROM (%L) TO (%L)',
                        v_name, v_table, v_month::timestamptz,
                        (v_month + interval '1 month')::timestamptz);
                    -- Reached only through the parent (whose policies apply); deny-all if
                    -- queried directly.
                    EXECUTE format('ALTER TABLE autodoctor.%I ENABLE ROW LEVEL SECURITY', v_name);
                    EXECUTE format('COMMENT ON TABLE autodoctor.%I IS %L', v_name,
                                   format('Partition of autodoctor.%s for %s.', v_table,
                                          to_char(v_month, 'YYYY-MM')));
                    PERFORM set_config('lock_timeout', v_saved, true);
                    v_created := v_created + 1;
                EXCEPTION
                    WHEN lock_not_available OR deadlock_detected THEN
                        -- The subtransaction's abort also restores lock_timeout.
                        v_deferred := v_deferred + 1;
                    WHEN duplicate_table THEN
                        NULL;  -- a concurrent run created it first
                END;
            END IF;
        END LOOP;

        SELECT CASE v_table WHEN 'session_events' THEN s.event_retention ELSE s.outbox_retention END
          INTO v_retention
          FROM autodoctor.settings s WHERE s.id;
        FOR v_part IN
            SELECT c.relname,
                   (regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid),
                                 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
              FROM pg_catalog.pg_inherits inh
              JOIN pg_catalog.pg_class c ON c.oid = inh.inhrelid
             WHERE inh.inhparent = format('autodoctor.%I', v_table)::regclass
        LOOP
            CONTINUE WHEN v_part.upper_bound IS NULL OR v_part.upper_bound > now() - v_retention;
            IF v_table = 'notification_outbox' THEN
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM autodoctor.%I WHERE status = %L)',
                               v_part.relname, 'pending')
                   INTO v_pending;
                CONTINUE WHEN v_pending;
            END IF;
            v_saved := current_setting('lock_timeout');
            BEGIN
                PERFORM set_config('lock_timeout', v_lock_timeout, true);
                EXECUTE format('DROP TABLE autodoctor.%I', v_part.relname);
                PERFORM set_config('lock_timeout', v_saved, true);
                v_dropped := v_dropped + 1;
            EXCEPTION
                WHEN lock_not_available OR deadlock_detected THEN
                    v_deferred := v_deferred + 1;
                WHEN undefined_table THEN
                    NULL;  -- a concurrent run dropped it first
            END;
        END LOOP;
    END LOOP;
    RETURN jsonb_build_object('created', v_created, 'dropped', v_dropped, 'deferred', v_deferred);
END
$$;

COMMENT ON FUNCTION autodoctor._maintain_partitions(integer) IS
    'Private: creates monthly history partitions ahead and drops those past retention, '
    'each under a 100 ms lock timeout (deferred to the next run when not granted).';
REVOKE ALL ON FUNCTION autodoctor._maintain_partitions(integer) FROM PUBLIC;

COMMIT;

-- Deploy autodoctor:history_partitions to pg
-- requires: session_events
-- requires: notification_outbox
-- requires: settings

BEGIN;

-- _maintain_partitions: keeps the history tables bounded.
-- Creates the monthly partitions of session_events and notification_outbox from this
-- month to months_ahead months ahead (so an insert always finds its partition, even if
-- maintenance stops for a while), and drops the months wholly older than the retention
-- settings; an outbox month still holding a pending e-mail is kept. Dropping a partition
-- is how history leaves: the append-only log itself refuses DELETE.
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
BEGIN
    FOREACH v_table IN ARRAY ARRAY['session_events', 'notification_outbox'] LOOP
        FOR i IN 0 .. months_ahead LOOP
            v_month := (date_trunc('month', now()) + make_interval(months => i))::date;
            v_name := format('%s_%s', v_table, to_char(v_month, 'YYYY"m"MM'));
            IF to_regclass(format('autodoctor.%I', v_name)) IS NULL THEN
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
                v_created := v_created + 1;
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
            EXECUTE format('DROP TABLE autodoctor.%I', v_part.relname);
            v_dropped := v_dropped + 1;
        END LOOP;
    END LOOP;
    RETURN jsonb_build_object('created', v_created, 'dropped', v_dropped);
END
$$;

COMMENT ON FUNCTION autodoctor._maintain_partitions(integer) IS
    'Private: creates monthly history partitions ahead and drops those past retention.';
REVOKE ALL ON FUNCTION autodoctor._maintain_partitions(integer) FROM PUBLIC;

DO $$
BEGIN
    PERFORM autodoctor._maintain_partitions();
END
$$;

COMMIT;

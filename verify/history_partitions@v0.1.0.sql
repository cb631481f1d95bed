-- Verify autodoctor:history_partitions on pg

BEGIN;

DO $$
BEGIN
    ASSERT EXISTS (
        SELECT 1 FROM pg_catalog.pg_inherits inh
          JOIN pg_catalog.pg_class c ON c.oid = inh.inhrelid
         WHERE inh.inhparent = 'autodoctor.session_events'::regclass
           AND c.relname = 'session_events_' || to_char(now(), 'YYYY"m"MM')),
        'this month''s session_events partition must exist';
END
$$;

ROLLBACK;

-- Verify autodoctor:outbox_dropped on pg

BEGIN;

DO $$
BEGIN
    ASSERT pg_get_constraintdef((SELECT c.oid FROM pg_catalog.pg_constraint c
                                  WHERE c.conrelid = 'autodoctor.notification_outbox'::regclass
                                    AND c.conname = 'notification_outbox_status_check'))
           LIKE '%dropped%',
        'notification_outbox.status must allow dropped';
END
$$;

ROLLBACK;

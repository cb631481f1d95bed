-- Verify autodoctor:outbox_worker on pg

BEGIN;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role', 'autodoctor.claim_notifications(integer)', 'execute'),
        'service_role must be able to execute claim_notifications';
    ASSERT has_function_privilege('service_role', 'autodoctor.complete_notification(bigint, text, integer)', 'execute'),
        'service_role must be able to execute complete_notification';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor.claim_notifications(integer)', 'execute'),
        'authenticated must not execute claim_notifications';
    ASSERT pg_get_functiondef('autodoctor.claim_notifications(integer)'::regprocedure)
           LIKE '%next_attempt_at = now() + interval ''5 minutes''%',
        'claim_notifications must lease, not hold row locks';
    ASSERT to_regprocedure('autodoctor._fan_out_new_requests(integer)') IS NOT NULL,
        '_fan_out_new_requests must exist';
    ASSERT NOT has_function_privilege('service_role', 'autodoctor._fan_out_new_requests(integer)', 'execute'),
        '_fan_out_new_requests is private';
END
$$;

ROLLBACK;

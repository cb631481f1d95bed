-- Verify autodoctor:notify_relay on pg

BEGIN;

SELECT id, last_event_id, relayed_at FROM autodoctor.relay_state WHERE FALSE;

DO $$
BEGIN
    ASSERT has_function_privilege('service_role', 'autodoctor.relay_events(integer)', 'execute'),
        'service_role must be able to execute relay_events';
    ASSERT has_function_privilege('service_role', 'autodoctor.set_notify_mode(text)', 'execute'),
        'service_role must be able to execute set_notify_mode';
    ASSERT NOT has_function_privilege('authenticated', 'autodoctor.set_notify_mode(text)', 'execute'),
        'authenticated must not execute set_notify_mode';
    ASSERT pg_get_functiondef('autodoctor.relay_events(integer)'::regprocedure) LIKE '%autodoctor.event_watermark()%',
        'relay_events must announce final events only';
END
$$;

ROLLBACK;

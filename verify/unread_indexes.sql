-- Verify autodoctor:unread_indexes on pg

BEGIN;

DO $$
BEGIN
    ASSERT to_regclass('autodoctor.session_requests_session_id_idx') IS NULL,
        'session_requests_session_id_idx must be gone';
    ASSERT (SELECT i.indisunique AND i.indpred IS NOT NULL
              FROM pg_index i
             WHERE i.indexrelid = 'autodoctor.sessions_stripe_session_id_key'::regclass),
        'sessions_stripe_session_id_key must be a unique index of the paid sessions';
END
$$;

ROLLBACK;

-- Verify autodoctor:pending_market_index on pg

BEGIN;

DO $$
DECLARE
    v_index CONSTANT regclass := to_regclass('autodoctor.session_requests_pending_market_idx');
BEGIN
    ASSERT v_index IS NOT NULL, 'session_requests_pending_market_idx must exist';
    ASSERT (SELECT i.indrelid = 'autodoctor.session_requests'::regclass AND i.indisvalid
              FROM pg_catalog.pg_index i WHERE i.indexrelid = v_index),
        'session_requests_pending_market_idx must be a valid index on session_requests';
    ASSERT pg_catalog.pg_get_indexdef(v_index)
           LIKE '%(market) WHERE COALESCE((status = ''pending''::autodoctor.session_request_status), false)',
        'session_requests_pending_market_idx must index market over the pending requests';
END
$$;

ROLLBACK;

-- Verify autodoctor:plpgsql_helpers on pg

BEGIN;

DO $$
BEGIN
    ASSERT (SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
             WHERE p.oid IN ('autodoctor._request_ttl()'::regprocedure,
                             'autodoctor._transition_allowed(autodoctor.session_status, autodoctor.session_status)'::regprocedure)
               AND l.lanname = 'plpgsql') = 2,
        '_request_ttl and _transition_allowed must be PL/pgSQL';
    ASSERT autodoctor._transition_allowed('waiting', 'live')
           AND NOT autodoctor._transition_allowed('completed', 'live'),
        'the state machine must be unchanged';
END
$$;

ROLLBACK;

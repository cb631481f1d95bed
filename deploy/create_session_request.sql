-- Deploy autodoctor:create_session_request to pg
-- requires: create_session_request@v0.1.0
-- requires: pending_request_cap
-- requires: session_requests
-- requires: session_events
-- requires: helpers
-- requires: notification_outbox

BEGIN;

-- create_session_request: a customer asks for a session (Flow 1).
-- Idempotent per (customer, idempotency_key): a retry returns the existing request and
-- logs nothing; the unique index makes that hold under concurrent retries too.
CREATE OR REPLACE FUNCTION autodoctor.create_session_request(
    session_type autodoctor.session_type,
    plan_code text,
    notes text DEFAULT NULL,
    idempotency_key text DEFAULT NULL
)
RETURNS autodoctor.session_requests
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_uid uuid := autodoctor._caller();
    v_email text;
    v_name text;
    v_request autodoctor.session_requests;
BEGIN
    PERFORM autodoctor._require_plan(create_session_request.session_type, create_session_request.plan_code);
    IF char_length(create_session_request.notes) > 2000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'notes are too long',
            DETAIL = 'notes_too_long',
            HINT = 'Keep notes to 2000 characters or fewer.';
    END IF;
    IF create_session_request.idempotency_key IS NOT NULL
       AND char_length(create_session_request.idempotency_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'invalid idempotency key',
            DETAIL = 'invalid_idempotency_key',
            HINT = 'Use a non-empty key of at most 200 characters, such as a UUID.';
    END IF;

    SELECT u.email, p.full_name INTO v_email, v_name
      FROM auth.users u
      LEFT JOIN autodoctor.profiles p ON p.id = u.id
     WHERE u.id = v_uid;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'unknown user',
            DETAIL = 'not_authenticated',
            HINT = 'The JWT sub claim must be the id of an existing auth.users row.';
    END IF;

    -- One customer's creates one at a time (their profile row), so that the cap below
    -- holds under concurrency; a retry with the same key passes too.
    PERFORM 1 FROM autodoctor.profiles p WHERE p.id = v_uid FOR NO KEY UPDATE;

    INSERT INTO autodoctor.session_requests
        (customer_id, session_type, plan_code, notes, idempotency_key,
         customer_name, customer_email, expires_at)
    VALUES
        (v_uid, create_session_request.session_type, create_session_request.plan_code,
         create_session_request.notes, create_session_request.idempotency_key,
         coalesce(nullif(btrim(v_name), ''), nullif(btrim(v_email), ''), 'Customer'),
         v_email, now() + autodoctor._request_ttl())
    ON CONFLICT (customer_id, idempotency_key, market) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING * INTO v_request;

    IF NOT FOUND THEN
        -- A retry: the same key was used before by this customer.
        SELECT * INTO v_request
          FROM autodoctor.session_requests r
         WHERE r.customer_id = v_uid AND r.idempotency_key = create_session_request.idempotency_key;
        IF v_request.session_type IS DISTINCT FROM create_session_request.session_type
           OR v_request.plan_code IS DISTINCT FROM create_session_request.plan_code
           OR v_request.notes IS DISTINCT FROM create_session_request.notes
           OR v_request.intake_id IS NOT NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT409',
                MESSAGE = 'idempotency key already used for a different request',
                DETAIL = 'idempotency_key_reused',
                HINT = 'Use a new key for a new request; reuse a key only to retry the same call.';
        END IF;
        RETURN v_request;
    END IF;

    -- At most settings.max_pending_requests pending requests per customer (this one counted).
    IF (SELECT count(*) FROM autodoctor.session_requests r
         WHERE r.customer_id = v_uid AND r.status = 'pending' AND r.expires_at > now())
       > (SELECT s.max_pending_requests FROM autodoctor.settings s WHERE s.id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PT429',
            MESSAGE = 'too many pending requests',
            DETAIL = 'too_many_pending_requests',
            HINT = format('A customer holds at most %s pending requests: cancel one, or wait until '
                          'one is accepted or expires.',
                          (SELECT s.max_pending_requests FROM autodoctor.settings s WHERE s.id));
    END IF;

    PERFORM autodoctor._log_event('new_request', v_request.id, NULL, v_uid, NULL, 'pending',
                                  v_request.session_type, v_request.plan_code);
    -- No e-mail here: claim_notifications fans the request out to the eligible mechanics
    -- after it commits (_fan_out_new_requests), off this transaction.
    RETURN v_request;
END
$$;

COMMENT ON FUNCTION autodoctor.create_session_request(autodoctor.session_type, text, text, text) IS
    'Creates a pending session request for the calling customer (idempotent per key). '
    'Errors: 42501 not_authenticated; 22023 invalid_session_type, unknown_plan, plan_forbids_type, notes_too_long, '
    'invalid_idempotency_key; PT409 idempotency_key_reused; PT429 too_many_pending_requests.';
REVOKE ALL ON FUNCTION autodoctor.create_session_request(autodoctor.session_type, text, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.create_session_request(autodoctor.session_type, text, text, text)
    TO authenticated;

COMMIT;

-- Deploy autodoctor:submit_intake to pg
-- requires: submit_intake@v0.1.0
-- requires: pending_request_cap
-- requires: intakes
-- requires: session_requests
-- requires: session_events
-- requires: notification_outbox
-- requires: helpers

BEGIN;

-- submit_intake: the intake form becomes an intake and a pending request (Flow 2, fixed).
-- Both rows in one transaction, and never a session: a session is born only when a
-- mechanic accepts. Idempotent per (customer, idempotency_key), like create_session_request.
CREATE OR REPLACE FUNCTION autodoctor.submit_intake(
    session_type autodoctor.session_type,
    plan_code text,
    vehicle jsonb,
    concern text,
    latitude double precision DEFAULT NULL,
    longitude double precision DEFAULT NULL,
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
    v_location autodoctor.intakes.location%TYPE := autodoctor._point(submit_intake.latitude, submit_intake.longitude);
    v_make text;
    v_model text;
    v_year integer;
    v_vin text;
    v_email text;
    v_name text;
    v_intake autodoctor.intakes;
    v_request autodoctor.session_requests;
BEGIN
    PERFORM autodoctor._require_plan(submit_intake.session_type, submit_intake.plan_code);

    -- The vehicle: {"make": text, "model": text, "year": integer, "vin": text|null}.
    IF submit_intake.vehicle IS NULL OR jsonb_typeof(submit_intake.vehicle) <> 'object' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'vehicle must be a JSON object',
            DETAIL = 'invalid_vehicle',
            HINT = 'Send {"make": "...", "model": "...", "year": 2015, "vin": "..." (optional)}.';
    END IF;
    IF jsonb_typeof(submit_intake.vehicle -> 'make') IS DISTINCT FROM 'string'
       OR char_length(btrim(submit_intake.vehicle ->> 'make')) NOT BETWEEN 1 AND 100
       OR jsonb_typeof(submit_intake.vehicle -> 'model') IS DISTINCT FROM 'string'
       OR char_length(btrim(submit_intake.vehicle ->> 'model')) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'vehicle make and model must be non-empty text (at most 100 characters)',
            DETAIL = 'invalid_vehicle';
    END IF;
    v_make := btrim(submit_intake.vehicle ->> 'make');
    v_model := btrim(submit_intake.vehicle ->> 'model');
    IF jsonb_typeof(submit_intake.vehicle -> 'year') IS DISTINCT FROM 'number'
       OR (submit_intake.vehicle ->> 'year') !~ '^[0-9]{4}$'
       OR (submit_intake.vehicle ->> 'year')::integer
          NOT BETWEEN 1900 AND extract(year FROM now())::integer + 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('vehicle year must be an integer from 1900 to %s',
                             extract(year FROM now())::integer + 1),
            DETAIL = 'invalid_vehicle';
    END IF;
    v_year := (submit_intake.vehicle ->> 'year')::integer;
    IF submit_intake.vehicle ? 'vin' AND jsonb_typeof(submit_intake.vehicle -> 'vin') <> 'null' THEN
        IF jsonb_typeof(submit_intake.vehicle -> 'vin') <> 'string'
           OR upper(submit_intake.vehicle ->> 'vin') !~ '^[A-HJ-NPR-Z0-9]{17}$' THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023', MESSAGE = 'VIN must be 17 characters: digits and letters except I, O and Q',
                DETAIL = 'invalid_vehicle';
        END IF;
        v_vin := upper(submit_intake.vehicle ->> 'vin');
    END IF;
    IF submit_intake.concern IS NULL OR char_length(btrim(submit_intake.concern)) NOT BETWEEN 1 AND 4000 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'concern must be between 1 and 4000 characters',
            DETAIL = 'invalid_concern',
            HINT = 'Describe the problem in a few sentences.';
    END IF;
    IF submit_intake.idempotency_key IS NOT NULL
       AND char_length(submit_intake.idempotency_key) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'invalid idempotency key',
            DETAIL = 'invalid_idempotency_key',
            HINT = 'Use a non-empty key of at most 200 characters, such as a UUID.';
    END IF;

    SELECT u.email, p.full_name INTO v_email, v_name
      FROM auth.users u LEFT JOIN autodoctor.profiles p ON p.id = u.id
     WHERE u.id = v_uid;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501', MESSAGE = 'unknown user', DETAIL = 'not_authenticated',
            HINT = 'The JWT sub claim must be the id of an existing auth.users row.';
    END IF;

    -- One customer's creates one at a time (their profile row), so that the cap below
    -- holds under concurrency; a retry with the same key passes too.
    PERFORM 1 FROM autodoctor.profiles p WHERE p.id = v_uid FOR NO KEY UPDATE;

    INSERT INTO autodoctor.intakes
        (customer_id, vehicle_make, vehicle_model, vehicle_year, vin, concern, location, idempotency_key)
    VALUES
        (v_uid, v_make, v_model, v_year, v_vin, btrim(submit_intake.concern), v_location,
         submit_intake.idempotency_key)
    ON CONFLICT (customer_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING * INTO v_intake;

    IF NOT FOUND THEN
        -- A retry: return the request this key produced the first time, if the call is the
        -- same one (type, plan, vehicle, concern and location); else the key was reused.
        SELECT i.* INTO v_intake
          FROM autodoctor.intakes i
         WHERE i.customer_id = v_uid AND i.idempotency_key = submit_intake.idempotency_key;
        SELECT r.* INTO v_request
          FROM autodoctor.session_requests r
         WHERE r.intake_id = v_intake.id;
        IF NOT FOUND OR v_request.session_type IS DISTINCT FROM submit_intake.session_type
           OR v_request.plan_code IS DISTINCT FROM submit_intake.plan_code
           OR v_intake.vehicle_make IS DISTINCT FROM v_make
           OR v_intake.vehicle_model IS DISTINCT FROM v_model
           OR v_intake.vehicle_year IS DISTINCT FROM v_year
           OR v_intake.vin IS DISTINCT FROM v_vin
           OR v_intake.concern IS DISTINCT FROM btrim(submit_intake.concern)
           -- The points' text forms (hex EWKB, the type's own output): no PostGIS name.
           OR v_intake.location::text IS DISTINCT FROM v_location::text THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PT409',
                MESSAGE = 'idempotency key already used for a different request',
                DETAIL = 'idempotency_key_reused',
                HINT = 'Use a new key for a new request; reuse a key only to retry the same call.';
        END IF;
        RETURN v_request;
    END IF;

    BEGIN
        INSERT INTO autodoctor.session_requests
            (customer_id, session_type, plan_code, notes, idempotency_key, customer_name,
             customer_email, expires_at, intake_id, location, metadata)
        VALUES
            (v_uid, submit_intake.session_type, submit_intake.plan_code,
             left(btrim(submit_intake.concern), 2000), submit_intake.idempotency_key,
             coalesce(nullif(btrim(v_name), ''), nullif(btrim(v_email), ''), 'Customer'),
             v_email, now() + autodoctor._request_ttl(), v_intake.id, v_location,
             jsonb_build_object('source', 'intake',
                                'vehicle', jsonb_build_object('make', v_make, 'model', v_model,
                                                              'year', v_year)))
        RETURNING * INTO v_request;
    EXCEPTION WHEN unique_violation THEN
        -- The key was used by create_session_request for a request without an intake.
        RAISE EXCEPTION USING
            ERRCODE = 'PT409',
            MESSAGE = 'idempotency key already used for a different request',
            DETAIL = 'idempotency_key_reused',
            HINT = 'Use a new key for a new request; reuse a key only to retry the same call.';
    END;

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
                                  v_request.session_type, v_request.plan_code,
                                  jsonb_build_object('source', 'intake'));
    -- No e-mail here: claim_notifications fans the request out to the eligible mechanics
    -- after it commits (_fan_out_new_requests), off this transaction.
    RETURN v_request;
END
$$;

COMMENT ON FUNCTION autodoctor.submit_intake(autodoctor.session_type, text, jsonb, text, double precision, double precision, text) IS
    'The calling customer submits the intake form: an intake and a pending request (with '
    'intake_id and location) in one transaction, never a session. Errors: 42501 '
    'not_authenticated; 22023 invalid_session_type, unknown_plan, plan_forbids_type, invalid_vehicle, '
    'invalid_concern, invalid_coordinates, invalid_idempotency_key; PT409 idempotency_key_reused; '
    'PT429 too_many_pending_requests.';
REVOKE ALL ON FUNCTION autodoctor.submit_intake(autodoctor.session_type, text, jsonb, text, double precision, double precision, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.submit_intake(autodoctor.session_type, text, jsonb, text, double precision, double precision, text)
    TO authenticated;

COMMIT;

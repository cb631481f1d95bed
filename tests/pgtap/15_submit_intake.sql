-- submit_intake: the intake form (Flow 2). One intake and one pending request pointing at
-- it, never a session; the request carries the intake's location, its notes are the
-- concern (cut to 2000), online mechanics who could accept it are e-mailed. Idempotent per
-- (customer, key). Success with the rows written, every SQLSTATE and reason (and HINT),
-- who may call it, nothing written (intakes and e-mails included) on failure.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(91);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Catalog and grants
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'submit_intake',
    ARRAY['autodoctor.session_type', 'text', 'jsonb', 'text', 'double precision', 'double precision', 'text'],
    'submit_intake(session_type, text, jsonb, text, double precision, double precision, text) should exist');
SELECT is_definer('autodoctor', 'submit_intake',
    ARRAY['autodoctor.session_type', 'text', 'jsonb', 'text', 'double precision', 'double precision', 'text'],
    'submit_intake should be SECURITY DEFINER');
SELECT function_privs_are('autodoctor', 'submit_intake',
    ARRAY['autodoctor.session_type', 'text', 'jsonb', 'text', 'double precision', 'double precision', 'text'],
    'authenticated', ARRAY['EXECUTE'], 'authenticated should be granted EXECUTE on submit_intake');
SELECT function_privs_are('autodoctor', 'submit_intake',
    ARRAY['autodoctor.session_type', 'text', 'jsonb', 'text', 'double precision', 'double precision', 'text'],
    'service_role', ARRAY[]::name[], 'service_role should not execute submit_intake');

-- ---------------------------------------------------------------------------------------
-- Fixtures: three online mechanics: Paris (covers the car), chat only, Lyon (too far)
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice');
SELECT pg_temp.new_user('bob', 'Bob');
SELECT pg_temp.remember('ghost', gen_random_uuid());                       -- no auth.users row
SELECT pg_temp.new_mechanic('mia', p_latitude => 48.8566, p_longitude => 2.3522, p_radius_km => 50);
SELECT pg_temp.new_mechanic('max', ARRAY['chat']::autodoctor.session_type[]);
SELECT pg_temp.new_mechanic('lea', p_latitude => 45.7640, p_longitude => 4.8357, p_radius_km => 10);
CREATE FUNCTION pg_temp.online(p_label text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_temp.login(p_label);
    PERFORM autodoctor.set_mechanic_availability(true);
    PERFORM pg_temp.logout();
END $$;
SELECT pg_temp.online('mia');
SELECT pg_temp.online('max');
SELECT pg_temp.online('lea');

-- ---------------------------------------------------------------------------------------
-- Success
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.login('alice');
SELECT lives_ok(
    $$SELECT pg_temp.remember('r1', (autodoctor.submit_intake(
          session_type => 'diagnostic', plan_code => 'free',
          vehicle => '{"make": " Peugeot ", "model": "208", "year": 2017, "vin": "vf3cchmz6hw012345"}',
          concern => '  Engine light on, rough idle  ',
          latitude => 48.8584, longitude => 2.2945, idempotency_key => 'k1')).id)$$,
    'a customer should submit an intake');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT status::text, customer_id, session_type::text, plan_code, notes, customer_name, idempotency_key,
             expires_at, session_id, metadata
        FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')$$,
    $$VALUES ('pending', pg_temp.id('alice'), 'diagnostic', 'free', 'Engine light on, rough idle', 'Alice', 'k1',
              now() + interval '1 day', NULL::uuid,
              '{"source": "intake", "vehicle": {"make": "Peugeot", "model": "208", "year": 2017}}'::jsonb)$$,
    'the request should be pending, for the caller, its notes the trimmed concern, the vehicle in metadata');
SELECT results_eq(
    $$SELECT i.customer_id, i.vehicle_make, i.vehicle_model, i.vehicle_year, i.vin, i.concern, i.idempotency_key,
             i.location::text = r.location::text, i.location::text = autodoctor._point(48.8584, 2.2945)::text
        FROM autodoctor.session_requests r JOIN autodoctor.intakes i ON i.id = r.intake_id
       WHERE r.id = pg_temp.id('r1')$$,
    $$VALUES (pg_temp.id('alice'), 'Peugeot', '208', 2017, 'VF3CCHMZ6HW012345', 'Engine light on, rough idle', 'k1',
              true, true)$$,
    'the intake should hold the trimmed vehicle, the VIN in capitals, the concern, and the request its location');
SELECT is_empty(
    $$SELECT id FROM autodoctor.sessions WHERE customer_user_id = pg_temp.id('alice')$$,
    'an intake should never create a session');
SELECT results_eq(
    $$SELECT event, actor_id, from_status, to_status, detail FROM autodoctor.session_events
       WHERE request_id = pg_temp.id('r1')$$,
    $$VALUES ('new_request', pg_temp.id('alice'), NULL::text, 'pending', '{"source": "intake"}'::jsonb)$$,
    'the intake should log one new_request event (source intake)');
SELECT is_empty(
    $$SELECT o.id FROM autodoctor.notification_outbox o WHERE o.request_id = pg_temp.id('r1')$$,
    'the intake should queue no e-mail in its own transaction');
SELECT is(
    (SELECT notification_sent_at FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')),
    NULL,
    'notification_sent_at should stay NULL until the fan-out');
-- The fan-out (claim_notifications runs it; tests/pgtap/55).
SELECT autodoctor._fan_out_new_requests(1000) > 0 AS fanned_out \g /dev/null
SELECT results_eq(
    $$SELECT o.mechanic_id, o.kind FROM autodoctor.notification_outbox o WHERE o.request_id = pg_temp.id('r1')$$,
    $$VALUES (pg_temp.id('mia'), 'new_request')$$,
    'the fan-out should e-mail only the online mechanic qualified and within reach');
SELECT isnt(
    (SELECT notification_sent_at FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')),
    NULL,
    'notification_sent_at should be set by the fan-out');

-- Retry with the same key and the same call: the same request, nothing new.
CREATE TEMP TABLE before_retry AS SELECT pg_temp.footprint_all() AS footprint;
SELECT pg_temp.login('alice');
SELECT is(
    (autodoctor.submit_intake('diagnostic', 'free',
        '{"make": "Peugeot", "model": "208", "year": 2017, "vin": "VF3CCHMZ6HW012345"}',
        'Engine light on, rough idle', 48.8584, 2.2945, 'k1')).id,
    pg_temp.id('r1'),
    'a retry with the same key and arguments should return the first request');
SELECT pg_temp.logout();
SELECT is(pg_temp.footprint_all(), (SELECT footprint FROM pg_temp.before_retry),
    'a retry should write nothing: no intake, request, event or e-mail');

-- No location; a concern longer than the notes allow.
SELECT pg_temp.login('alice');
SELECT lives_ok(
    $$SELECT pg_temp.remember('r2', (autodoctor.submit_intake('chat', 'standard',
          '{"make": "Ford", "model": "Focus", "year": 2012, "vin": null}', repeat('n', 3000))).id)$$,
    'an intake without a location and with a null VIN should be accepted');
SELECT pg_temp.logout();
SELECT results_eq(
    $$SELECT char_length(r.notes), char_length(i.concern), r.location IS NULL, i.location IS NULL, i.vin
        FROM autodoctor.session_requests r JOIN autodoctor.intakes i ON i.id = r.intake_id
       WHERE r.id = pg_temp.id('r2')$$,
    $$VALUES (2000, 3000, true, true, NULL::text)$$,
    'the notes should be the concern cut to 2000 characters; the intake keeps it whole');

-- Who reads the result.
SELECT pg_temp.login('mia');
SELECT results_eq(
    $$SELECT id, distance_km FROM autodoctor.incoming_requests WHERE id = pg_temp.id('r1')$$,
    $$VALUES (pg_temp.id('r1'), 4.2)$$,
    'a mechanic in reach should see the intake''s request with its distance');
SELECT pg_temp.login('lea');
SELECT is_empty(
    $$SELECT id FROM autodoctor.incoming_requests WHERE id = pg_temp.id('r1')$$,
    'a mechanic whose radius does not reach the car should not see it');
SELECT pg_temp.login('bob');
SELECT is_empty(
    $$SELECT id FROM autodoctor.session_requests WHERE id = pg_temp.id('r1')$$,
    'another customer should not read the request');
SELECT is_empty($$SELECT id FROM autodoctor.intakes WHERE customer_id = pg_temp.id('alice')$$,
    'another customer should not read the intake');
SELECT pg_temp.login('alice');
SELECT is((SELECT count(*)::int FROM autodoctor.intakes), 2, 'the customer should read their own intakes');
SELECT pg_temp.logout();

-- ---------------------------------------------------------------------------------------
-- Errors: every SQLSTATE and reason, with the documented HINTs
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE before AS SELECT pg_temp.footprint_all() AS footprint;
CREATE FUNCTION pg_temp.call(p_args text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'SELECT autodoctor.submit_intake(' || p_args || ')';
$$;
GRANT EXECUTE ON FUNCTION pg_temp.call(text) TO PUBLIC;
CREATE TEMP TABLE bad (args text, sqlstate text, reason text, what text);
GRANT SELECT ON TABLE pg_temp.bad TO PUBLIC;
INSERT INTO bad VALUES
    ($$NULL, 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$, '22023', 'invalid_session_type', 'a NULL session type'),
    ($$'phone', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$, '22P02', NULL, 'a session type not in the enum'),
    ($$'chat', 'gold', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$, '22023', 'unknown_plan', 'an unknown plan'),
    ($$'diagnostic', 'standard', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$, '22023', 'plan_forbids_type', 'a plan that forbids the type'),
    ($$'chat', 'free', NULL, 'noise'$$, '22023', 'invalid_vehicle', 'a NULL vehicle'),
    ($$'chat', 'free', '["Ford", "Ka"]', 'noise'$$, '22023', 'invalid_vehicle', 'a vehicle that is not an object'),
    ($$'chat', 'free', '{"make": "Ford", "year": 2010}', 'noise'$$, '22023', 'invalid_vehicle', 'a vehicle without a model'),
    ($$'chat', 'free', '{"make": "  ", "model": "Ka", "year": 2010}', 'noise'$$, '22023', 'invalid_vehicle', 'a blank make'),
    ($$'chat', 'free', jsonb_build_object('make', repeat('F', 101), 'model', 'Ka', 'year', 2010), 'noise'$$, '22023', 'invalid_vehicle', 'a make over 100 characters'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": "2010"}', 'noise'$$, '22023', 'invalid_vehicle', 'a year given as text'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 1899}', 'noise'$$, '22023', 'invalid_vehicle', 'a year before 1900'),
    ($$'chat', 'free', jsonb_build_object('make', 'Ford', 'model', 'Ka', 'year', extract(year FROM now())::int + 2), 'noise'$$, '22023', 'invalid_vehicle', 'a year after next year'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010.5}', 'noise'$$, '22023', 'invalid_vehicle', 'a fractional year'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010, "vin": "VF3CCHMZ6HW01234O"}', 'noise'$$, '22023', 'invalid_vehicle', 'a VIN with an O'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010, "vin": "VF3CC"}', 'noise'$$, '22023', 'invalid_vehicle', 'a short VIN'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', NULL$$, '22023', 'invalid_concern', 'a NULL concern'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', '   '$$, '22023', 'invalid_concern', 'a blank concern'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', repeat('c', 4001)$$, '22023', 'invalid_concern', 'a concern over 4000 characters'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise', latitude => 48.8$$, '22023', 'invalid_coordinates', 'a latitude without a longitude'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise', 91, 2$$, '22023', 'invalid_coordinates', 'a latitude out of range'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise', 48, 'NaN'$$, '22023', 'invalid_coordinates', 'a NaN longitude'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise', idempotency_key => ''$$, '22023', 'invalid_idempotency_key', 'an empty idempotency key'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise', idempotency_key => repeat('k', 201)$$, '22023', 'invalid_idempotency_key', 'an idempotency key over 200 characters'),
    ($$'video', 'free', '{"make": "Peugeot", "model": "208", "year": 2017, "vin": "VF3CCHMZ6HW012345"}', 'Engine light on, rough idle', 48.8584, 2.2945, 'k1'$$, 'PT409', 'idempotency_key_reused', 'a reused key with another session type'),
    ($$'diagnostic', 'free', '{"make": "Peugeot", "model": "208", "year": 2017, "vin": "VF3CCHMZ6HW012345"}', 'Engine light on', 48.8584, 2.2945, 'k1'$$, 'PT409', 'idempotency_key_reused', 'a reused key with another concern'),
    ($$'diagnostic', 'free', '{"make": "Peugeot", "model": "208", "year": 2017, "vin": "VF3CCHMZ6HW012345"}', 'Engine light on, rough idle', 48.86, 2.2945, 'k1'$$, 'PT409', 'idempotency_key_reused', 'a reused key with another location'),
    ($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise', idempotency_key => 'k_plain'$$, 'PT409', 'idempotency_key_reused', 'a key create_session_request already used');
SELECT pg_temp.login('alice');
SELECT autodoctor.create_session_request('chat', 'free', idempotency_key => 'k_plain') IS NOT NULL AS made \g /dev/null
SELECT pg_temp.logout();
DROP TABLE pg_temp.before;
CREATE TEMP TABLE before AS SELECT pg_temp.footprint_all() AS footprint;
SELECT pg_temp.login('alice');
SELECT pg_temp.throws_reason(pg_temp.call(b.args), b.sqlstate, b.reason, 'submit_intake should refuse ' || b.what)
  FROM pg_temp.bad b;
SELECT is(pg_temp.hint_of(pg_temp.call((SELECT args FROM pg_temp.bad WHERE reason = 'invalid_concern' LIMIT 1))),
    'Describe the problem in a few sentences.', 'invalid_concern should carry its HINT');
SELECT is(pg_temp.hint_of(pg_temp.call((SELECT args FROM pg_temp.bad WHERE reason = 'invalid_coordinates' LIMIT 1))),
    'Give both latitude (-90..90) and longitude (-180..180) in WGS 84 degrees, or neither.',
    'invalid_coordinates should carry its HINT');
SELECT is(pg_temp.hint_of(pg_temp.call((SELECT args FROM pg_temp.bad WHERE reason = 'idempotency_key_reused' LIMIT 1))),
    'Use a new key for a new request; reuse a key only to retry the same call.',
    'idempotency_key_reused should carry its HINT');
SELECT pg_temp.logout();

-- The cap on pending requests: alice holds three; lower the cap to three.
UPDATE autodoctor.settings SET max_pending_requests = 3;
SELECT pg_temp.login('alice');
SELECT * FROM pg_temp.throws_reason(
    pg_temp.call($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$),
    'PT429', 'too_many_pending_requests',
    'submit_intake should refuse a customer at settings.max_pending_requests');
SELECT is(pg_temp.hint_of(pg_temp.call($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$)),
    'A customer holds at most 3 pending requests: cancel one, or wait until one is accepted or expires.',
    'too_many_pending_requests should say the cap in its HINT');

SELECT pg_temp.login_nobody();
SELECT * FROM pg_temp.throws_reason(
    pg_temp.call($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$),
    '42501', 'not_authenticated', 'submit_intake should refuse a caller without JWT claims');
SELECT pg_temp.login('ghost');
SELECT * FROM pg_temp.throws_reason(
    pg_temp.call($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$),
    '42501', 'not_authenticated', 'submit_intake should refuse a JWT whose sub is no user');
SELECT is(pg_temp.hint_of(pg_temp.call($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$)),
    'The JWT sub claim must be the id of an existing auth.users row.',
    'an unknown user should be told why in the HINT');
SELECT pg_temp.login_service();
SELECT * FROM pg_temp.throws_reason(
    pg_temp.call($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$),
    '42501', NULL, 'service_role should be refused EXECUTE');
SELECT pg_temp.logout();
SELECT is(
    pg_temp.anon_error_of(pg_temp.call($$'chat', 'free', '{"make": "Ford", "model": "Ka", "year": 2010}', 'noise'$$)),
    '42501:',
    'anon should be refused (no USAGE on the schema), without a reason');

SELECT is(pg_temp.footprint_all(), (SELECT footprint FROM pg_temp.before),
    'a refused intake should write nothing: no intake, request, event or e-mail');

SELECT * FROM finish();
ROLLBACK;

-- Deploy autodoctor:mechanic_guards to pg
-- requires: mechanics
-- requires: helpers

BEGIN;

-- The guards every mechanic-facing function shares, so each refusal has one reason, one
-- SQLSTATE and one HINT wherever it is raised (accept_session_request,
-- claim_orphaned_session, set_mechanic_availability).

-- PostGIS may live in any schema: put it on this transaction's search path so that the
-- type geography below binds to it by identity (as in deploy/helpers.sql). The function
-- keeps SET search_path = '' and names no PostGIS function: it calls autodoctor._within.
DO $bind$
BEGIN
    PERFORM pg_catalog.set_config('search_path', (
        SELECT pg_catalog.quote_ident(n.nspname)
          FROM pg_catalog.pg_extension e
          JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'postgis'), true);
END
$bind$;

-- _require_mechanic: the caller's mechanic row, or 42501 not_mechanic when the user is no
-- mechanic or a deactivated one. `doing` completes the MESSAGE ("only an active mechanic
-- can accept a session request"); the reason and the HINT are the same for every caller.
-- No row lock: the functions lock the mechanic last (request, session, mechanic).
CREATE OR REPLACE FUNCTION autodoctor._require_mechanic(
    mechanic_id uuid,
    doing text
)
RETURNS autodoctor.mechanics
LANGUAGE plpgsql
STABLE
SET search_path = ''
AS $$
DECLARE
    v_mechanic autodoctor.mechanics;
BEGIN
    SELECT * INTO v_mechanic
      FROM autodoctor.mechanics m
     WHERE m.user_id = _require_mechanic.mechanic_id;
    IF NOT FOUND OR NOT v_mechanic.active THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('only an active mechanic %s', _require_mechanic.doing),
            DETAIL = 'not_mechanic',
            HINT = 'Mechanics are registered by the service with register_mechanic.';
    END IF;
    RETURN v_mechanic;
END
$$;

COMMENT ON FUNCTION autodoctor._require_mechanic(uuid, text) IS
    'Private: the active mechanic''s row, or 42501 not_mechanic (one HINT for every caller).';
REVOKE ALL ON FUNCTION autodoctor._require_mechanic(uuid, text) FROM PUBLIC;

-- _require_can_serve: refuses a session a mechanic may not take. First the expertise
-- (42501 not_qualified), then the service area (42501 out_of_service_area): another
-- market, or a located session farther than the mechanic's radius from a located
-- mechanic (an unlocated side is not checked). `what` names the thing in the MESSAGE
-- ("session request", "session"); the reasons and HINTs are the same for every caller.
CREATE OR REPLACE FUNCTION autodoctor._require_can_serve(
    mechanic autodoctor.mechanics,
    session_type autodoctor.session_type,
    market text,
    location geography,
    what text
)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = ''
AS $$
BEGIN
    IF NOT (_require_can_serve.session_type = ANY ((_require_can_serve.mechanic).expertise)) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('this mechanic does not take %s sessions', _require_can_serve.session_type),
            DETAIL = 'not_qualified',
            HINT = 'Only mechanics whose expertise covers the session type can accept it.';
    END IF;
    IF _require_can_serve.market <> (_require_can_serve.mechanic).market
       OR (_require_can_serve.location IS NOT NULL
           AND (_require_can_serve.mechanic).location IS NOT NULL
           AND NOT autodoctor._within(_require_can_serve.location, (_require_can_serve.mechanic).location,
                                      ((_require_can_serve.mechanic).service_radius_km * 1000)::double precision)) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('%s is outside this mechanic''s service area', _require_can_serve.what),
            DETAIL = 'out_of_service_area',
            HINT = 'Widen the service radius or update the location with set_mechanic_availability.';
    END IF;
END
$$;

COMMENT ON FUNCTION autodoctor._require_can_serve(autodoctor.mechanics, autodoctor.session_type, text, geography, text) IS
    'Private: 42501 not_qualified or out_of_service_area when the mechanic may not take a '
    'session of this type, market and location (one HINT each for every caller).';
REVOKE ALL ON FUNCTION autodoctor._require_can_serve(autodoctor.mechanics, autodoctor.session_type, text, geography, text) FROM PUBLIC;

COMMIT;

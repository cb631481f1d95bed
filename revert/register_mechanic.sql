-- Deploy autodoctor:register_mechanic to pg
-- requires: mechanics
-- requires: helpers

BEGIN;

-- register_mechanic: the service makes a user a mechanic, or updates their profile.
-- The only way to become a mechanic (never user metadata). Registration is offline;
-- re-registering keeps the current online flag and re-activates the mechanic.
CREATE OR REPLACE FUNCTION autodoctor.register_mechanic(
    user_id uuid,
    expertise autodoctor.session_type[] DEFAULT enum_range(NULL::autodoctor.session_type),
    latitude double precision DEFAULT NULL,
    longitude double precision DEFAULT NULL,
    service_radius_km numeric DEFAULT 50,
    max_concurrent_sessions integer DEFAULT 1
)
RETURNS autodoctor.mechanics
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_location autodoctor.mechanics.location%TYPE := autodoctor._point(register_mechanic.latitude, register_mechanic.longitude);
    v_expertise autodoctor.session_type[];
    v_mechanic autodoctor.mechanics;
BEGIN
    IF register_mechanic.user_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'user_id is required', DETAIL = 'invalid_user_id';
    END IF;
    SELECT array_agg(DISTINCT t ORDER BY t) INTO v_expertise
      FROM unnest(register_mechanic.expertise) AS t;
    IF v_expertise IS NULL OR array_position(v_expertise, NULL) IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'expertise must list at least one session type',
            DETAIL = 'invalid_expertise',
            HINT = 'Use session types chat, video, diagnostic.';
    END IF;
    IF register_mechanic.service_radius_km IS NULL
       OR NOT (register_mechanic.service_radius_km > 0 AND register_mechanic.service_radius_km <= 20000) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'service radius must be between 0 and 20000 km',
            DETAIL = 'invalid_service_radius';
    END IF;
    IF register_mechanic.max_concurrent_sessions IS NULL
       OR register_mechanic.max_concurrent_sessions NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'max concurrent sessions must be between 1 and 100',
            DETAIL = 'invalid_capacity';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM autodoctor.profiles p WHERE p.id = register_mechanic.user_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PT404',
            MESSAGE = 'user not found',
            DETAIL = 'user_not_found',
            HINT = 'The user must exist in auth.users (its profile is created with it).';
    END IF;

    INSERT INTO autodoctor.mechanics AS m
        (user_id, active, online, expertise, location, service_radius_km, max_concurrent_sessions)
    VALUES
        (register_mechanic.user_id, true, false, v_expertise, v_location,
         register_mechanic.service_radius_km, register_mechanic.max_concurrent_sessions)
    ON CONFLICT (user_id) DO UPDATE
       SET active = true,
           expertise = EXCLUDED.expertise,
           location = coalesce(EXCLUDED.location, m.location),
           service_radius_km = EXCLUDED.service_radius_km,
           max_concurrent_sessions = EXCLUDED.max_concurrent_sessions,
           updated_at = now()
    RETURNING * INTO v_mechanic;
    RETURN v_mechanic;
END
$$;

COMMENT ON FUNCTION autodoctor.register_mechanic(uuid, autodoctor.session_type[], double precision, double precision, numeric, integer) IS
    'Service role: makes a user an active (offline) mechanic, or updates one. Errors: 42501 '
    '(not service_role); PT404 user_not_found; 22023 invalid_user_id, invalid_expertise, invalid_coordinates, '
    'invalid_service_radius, invalid_capacity.';
REVOKE ALL ON FUNCTION autodoctor.register_mechanic(uuid, autodoctor.session_type[], double precision, double precision, numeric, integer) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.register_mechanic(uuid, autodoctor.session_type[], double precision, double precision, numeric, integer)
    TO service_role;

COMMIT;

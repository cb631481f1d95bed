-- Deploy autodoctor:set_mechanic_availability to pg
-- requires: mechanics
-- requires: helpers

BEGIN;

-- set_mechanic_availability: a mechanic goes online or offline, optionally moving.
-- Without coordinates the stored location is kept. Online matters only to
-- auto-assignment and e-mail; accepting needs no online flag.
CREATE OR REPLACE FUNCTION autodoctor.set_mechanic_availability(
    online boolean,
    latitude double precision DEFAULT NULL,
    longitude double precision DEFAULT NULL
)
RETURNS autodoctor.mechanics
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
#variable_conflict use_column
DECLARE
    v_uid uuid := autodoctor._caller();
    v_location autodoctor.mechanics.location%TYPE := autodoctor._point(set_mechanic_availability.latitude, set_mechanic_availability.longitude);
    v_mechanic autodoctor.mechanics;
BEGIN
    IF set_mechanic_availability.online IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'online must be true or false',
            DETAIL = 'invalid_online';
    END IF;
    UPDATE autodoctor.mechanics m
       SET online = set_mechanic_availability.online,
           location = coalesce(v_location, m.location),
           updated_at = now()
     WHERE m.user_id = v_uid AND m.active
    RETURNING * INTO v_mechanic;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'only an active mechanic has an availability',
            DETAIL = 'not_mechanic',
            HINT = 'Mechanics are registered by the service with register_mechanic.';
    END IF;
    RETURN v_mechanic;
END
$$;

COMMENT ON FUNCTION autodoctor.set_mechanic_availability(boolean, double precision, double precision) IS
    'The calling mechanic goes online/offline and may update their location. Errors: 42501 '
    'not_authenticated, not_mechanic; 22023 invalid_online, invalid_coordinates.';
REVOKE ALL ON FUNCTION autodoctor.set_mechanic_availability(boolean, double precision, double precision) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.set_mechanic_availability(boolean, double precision, double precision)
    TO authenticated;

COMMIT;

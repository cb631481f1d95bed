-- Deploy autodoctor:helpers to pg
-- requires: appschema
-- requires: extensions

BEGIN;

-- _caller: the calling user, from the JWT claims PostgREST sets.
-- Raises 42501 (not_authenticated) when there is none, so no function runs anonymously.
CREATE FUNCTION autodoctor._caller()
RETURNS uuid
LANGUAGE plpgsql
STABLE
SET search_path = ''
AS $$
DECLARE
    v_uid uuid := auth.uid();
BEGIN
    IF v_uid IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'not authenticated',
            DETAIL = 'not_authenticated',
            HINT = 'Call as role authenticated with request.jwt.claims holding the user id in "sub".';
    END IF;
    RETURN v_uid;
END
$$;

COMMENT ON FUNCTION autodoctor._caller() IS
    'Private: auth.uid(), or 42501 not_authenticated when there is no caller.';
REVOKE ALL ON FUNCTION autodoctor._caller() FROM PUBLIC;

-- _point: a WGS 84 point from plain latitude and longitude numbers.
-- Both or neither (NULL then); in range and finite, else 22023 invalid_coordinates.
CREATE FUNCTION autodoctor._point(
    latitude double precision,
    longitude double precision
)
RETURNS extensions.geography
LANGUAGE plpgsql
IMMUTABLE
SET search_path = ''
AS $$
BEGIN
    IF latitude IS NULL AND longitude IS NULL THEN
        RETURN NULL;
    END IF;
    IF latitude IS NULL OR longitude IS NULL
       OR NOT (latitude BETWEEN -90 AND 90) OR NOT (longitude BETWEEN -180 AND 180)
       OR latitude = 'NaN'::double precision OR longitude = 'NaN'::double precision THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'invalid coordinates',
            DETAIL = 'invalid_coordinates',
            HINT = 'Give both latitude (-90..90) and longitude (-180..180) in WGS 84 degrees, or neither.';
    END IF;
    RETURN extensions.st_setsrid(extensions.st_makepoint(longitude, latitude), 4326)::extensions.geography;
END
$$;

COMMENT ON FUNCTION autodoctor._point(double precision, double precision) IS
    'Private: geography(Point,4326) from latitude/longitude, or 22023 invalid_coordinates.';
REVOKE ALL ON FUNCTION autodoctor._point(double precision, double precision) FROM PUBLIC;

COMMIT;

-- Deploy autodoctor:helpers to pg
-- requires: appschema
-- requires: extensions

BEGIN;

-- PostGIS may live in any schema (extensions on Supabase, public on a plain PostgreSQL):
-- put it on this transaction's search path, so that the types, functions and operators
-- named below bind to it by identity as the objects are created. Nothing looks PostGIS
-- up by name at run time: the functions keep SET search_path = ''.
DO $bind$
BEGIN
    PERFORM pg_catalog.set_config('search_path', (
        SELECT pg_catalog.quote_ident(n.nspname)
          FROM pg_catalog.pg_extension e
          JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'postgis'), true);
END
$bind$;

-- _caller: the calling user, from the JWT claims PostgREST sets.
-- Raises 42501 (not_authenticated) when there is none, so no function runs anonymously.
CREATE OR REPLACE FUNCTION autodoctor._caller()
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

-- PostGIS through SQL-standard bodies (BEGIN ATOMIC): parsed when created, with PostGIS's
-- schema on the search path (above), and bound to its objects by identity, so they work
-- wherever PostGIS lives and resolve nothing by name when they run. PL/pgSQL bodies call
-- these instead of naming PostGIS.

-- _make_point: geography(Point, 4326) from latitude and longitude, unchecked (_point checks).
CREATE OR REPLACE FUNCTION autodoctor._make_point(
    latitude double precision,
    longitude double precision
)
RETURNS geography
LANGUAGE sql
IMMUTABLE
STRICT
SET search_path = ''
BEGIN ATOMIC
    SELECT st_setsrid(st_makepoint(longitude, latitude), 4326)::geography;
END;

COMMENT ON FUNCTION autodoctor._make_point(double precision, double precision) IS
    'Private: geography(Point,4326) from latitude/longitude (PostGIS bound at deploy).';
REVOKE ALL ON FUNCTION autodoctor._make_point(double precision, double precision) FROM PUBLIC;

-- _within: are two points at most `meters` apart (PostGIS st_dwithin on the spheroid)?
CREATE OR REPLACE FUNCTION autodoctor._within(
    a geography,
    b geography,
    meters double precision
)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
STRICT
SET search_path = ''
BEGIN ATOMIC
    SELECT st_dwithin(a, b, meters);
END;

COMMENT ON FUNCTION autodoctor._within(geography, geography, double precision) IS
    'Private: st_dwithin(a, b, meters), PostGIS bound at deploy.';
REVOKE ALL ON FUNCTION autodoctor._within(geography, geography, double precision) FROM PUBLIC;

-- _point: a WGS 84 point from plain latitude and longitude numbers.
-- Both or neither (NULL then); in range and finite, else 22023 invalid_coordinates.
CREATE OR REPLACE FUNCTION autodoctor._point(
    latitude double precision,
    longitude double precision
)
RETURNS geography
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
    RETURN autodoctor._make_point(latitude, longitude);
END
$$;

COMMENT ON FUNCTION autodoctor._point(double precision, double precision) IS
    'Private: geography(Point,4326) from latitude/longitude, or 22023 invalid_coordinates.';
REVOKE ALL ON FUNCTION autodoctor._point(double precision, double precision) FROM PUBLIC;

COMMIT;

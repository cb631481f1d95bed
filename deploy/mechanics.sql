-- Deploy autodoctor:mechanics to pg
-- requires: profiles
-- requires: enums
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

CREATE TABLE autodoctor.mechanics (
    user_id uuid PRIMARY KEY REFERENCES autodoctor.profiles (id) ON DELETE CASCADE,
    active boolean NOT NULL DEFAULT true,
    online boolean NOT NULL DEFAULT false,
    expertise autodoctor.session_type[] NOT NULL
        DEFAULT enum_range(NULL::autodoctor.session_type)
        CHECK (cardinality(expertise) > 0 AND array_position(expertise, NULL) IS NULL),
    -- The market (region) the row belongs to: the future distribution key (docs/SCALING.md).
    market text NOT NULL DEFAULT 'default' CHECK (market ~ '^[a-z0-9_-]{1,40}$'),
    location geography(Point, 4326),
    service_radius_km numeric NOT NULL DEFAULT 50
        CHECK (service_radius_km > 0 AND service_radius_km <= 20000),
    max_concurrent_sessions integer NOT NULL DEFAULT 1
        CHECK (max_concurrent_sessions BETWEEN 1 AND 100),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE autodoctor.mechanics IS
    'The mechanic side of a user: active, online, expertise (session types), location, '
    'service radius and capacity. Rows are written only by register_mechanic and '
    'set_mechanic_availability.';

-- Nearest-mechanic search (GiST KNN) and the dispatch queue of available mechanics.
CREATE INDEX mechanics_location_idx ON autodoctor.mechanics USING gist (location);
CREATE INDEX mechanics_available_idx ON autodoctor.mechanics (user_id) WHERE active AND online;

ALTER TABLE autodoctor.mechanics ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON autodoctor.mechanics TO authenticated, service_role;

CREATE POLICY mechanics_select_authenticated ON autodoctor.mechanics
    FOR SELECT TO authenticated
    USING (user_id = (SELECT auth.uid()));
COMMENT ON POLICY mechanics_select_authenticated ON autodoctor.mechanics IS
    'A mechanic reads their own row.';

CREATE POLICY mechanics_select_service ON autodoctor.mechanics
    FOR SELECT TO service_role USING (true);
COMMENT ON POLICY mechanics_select_service ON autodoctor.mechanics IS
    'The service role reads every mechanic.';

COMMIT;

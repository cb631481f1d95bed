-- Deploy autodoctor:intakes to pg
-- requires: profiles
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

CREATE TABLE autodoctor.intakes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    customer_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    vehicle_make text NOT NULL CHECK (char_length(vehicle_make) BETWEEN 1 AND 100),
    vehicle_model text NOT NULL CHECK (char_length(vehicle_model) BETWEEN 1 AND 100),
    vehicle_year integer NOT NULL CHECK (vehicle_year >= 1900),
    vin text CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
    concern text NOT NULL CHECK (char_length(concern) BETWEEN 1 AND 4000),
    location geography(Point, 4326),
    idempotency_key text CHECK (char_length(idempotency_key) BETWEEN 1 AND 200)
);

COMMENT ON TABLE autodoctor.intakes IS
    'The intake form: vehicle, concern and location. Written only by submit_intake, '
    'which turns it into a session request (never a session).';

CREATE INDEX intakes_customer_id_idx ON autodoctor.intakes (customer_id, created_at DESC);
CREATE UNIQUE INDEX intakes_idempotency_key_idx ON autodoctor.intakes (customer_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

ALTER TABLE autodoctor.intakes ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON autodoctor.intakes TO authenticated, service_role;

CREATE POLICY intakes_select_authenticated ON autodoctor.intakes
    FOR SELECT TO authenticated
    USING (customer_id = (SELECT auth.uid()));
COMMENT ON POLICY intakes_select_authenticated ON autodoctor.intakes IS
    'A customer reads their own intakes.';

CREATE POLICY intakes_select_service ON autodoctor.intakes
    FOR SELECT TO service_role USING (true);
COMMENT ON POLICY intakes_select_service ON autodoctor.intakes IS
    'The service role reads every intake.';

COMMIT;

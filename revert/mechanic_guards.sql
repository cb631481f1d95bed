-- Revert autodoctor:mechanic_guards from pg

BEGIN;

-- Bind PostGIS's schema, as the deploy did, so that the type geography in the signature
-- below resolves.
DO $bind$
BEGIN
    PERFORM pg_catalog.set_config('search_path', (
        SELECT pg_catalog.quote_ident(n.nspname)
          FROM pg_catalog.pg_extension e
          JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'postgis'), true);
END
$bind$;

DROP FUNCTION autodoctor._require_can_serve(autodoctor.mechanics, autodoctor.session_type, text, geography, text);
DROP FUNCTION autodoctor._require_mechanic(uuid, text);

COMMIT;

-- bench/sql/helpers.sql: reproducible ids, numbers and points for benchmark data.
-- Created in the benchmark cluster's databases only (schema bench), never by sqitch.
\set ON_ERROR_STOP on

CREATE SCHEMA bench;
COMMENT ON SCHEMA bench IS 'Benchmark helpers: exists only in the benchmark cluster.';

-- uid: the id of the n-th row of a kind ('cust', 'mech', 'req', 'sess', 'intake', 'pool', ...).
-- The same as md5('bench-' || kind || '-' || n)::uuid in pgbench scripts and loadgen.uid().
CREATE FUNCTION bench.uid(kind text, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT md5('bench-' || kind || '-' || n)::uuid $$;

-- uid_ordered: the same row's id when this version creates it: time-ordered (UUID version
-- 7's layout), the first 48 bits growing with n, the rest from uid. The same as the
-- expression counters.ordered_script() puts in pgbench scripts.
CREATE FUNCTION bench.uid_ordered(kind text, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (lpad(to_hex(n), 12, '0') || '7' || substr(md5('bench-' || kind || '-' || n), 1, 19))::uuid $$;

-- frac: a reproducible pseudo-random number in [0, 1) for (n, salt).
CREATE FUNCTION bench.frac(n bigint, salt integer DEFAULT 0) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (((hashint8(n * 7 + salt)::bigint + 2147483648) % 1000003) / 1000003.0)::double precision $$;

-- point: the n-th location in the service region, about 100 x 100 km around Berlin.
CREATE FUNCTION bench.point(n bigint, salt integer DEFAULT 0) RETURNS extensions.geography
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT extensions.st_setsrid(extensions.st_makepoint(
              13.40 + (bench.frac(n, salt + 1) - 0.5) * 1.5,
              52.52 + (bench.frac(n, salt + 2) - 0.5) * 0.9), 4326)::extensions.geography $$;

-- The role PostgREST logs in as: it can only become anon, authenticated or service_role.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN
        CREATE ROLE authenticator LOGIN NOINHERIT;
    END IF;
END $$;
GRANT anon, authenticated, service_role TO authenticator;
GRANT USAGE ON SCHEMA bench TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION bench.uid(text, bigint) TO authenticated, service_role;

-- emit_event_message: the broadcast as a transactional logical decoding message instead of
-- a NOTIFY (section decoding, delivery mode logical_message), read from the WAL by
-- bench/autodoctor_bench/logical_relay.py. Made from the package's own trigger function
-- autodoctor._notify_event, with pg_notify replaced, so the payload is the same by
-- construction. Attached only for that mode's runs (config.DECODING_MODES).
DO $$
DECLARE
    def text := pg_get_functiondef('autodoctor._notify_event()'::regprocedure);
BEGIN
    def := replace(def, 'autodoctor._notify_event()', 'bench.emit_event_message()');
    def := replace(def, 'pg_catalog.pg_notify(''autodoctor'',',
                   'pg_catalog.pg_logical_emit_message(true, ''autodoctor'',');
    IF position('pg_logical_emit_message' IN def) = 0
       OR position('bench.emit_event_message()' IN def) = 0 THEN
        RAISE EXCEPTION 'autodoctor._notify_event changed shape: %', def;
    END IF;
    EXECUTE def;
END
$$;

-- plpgsql_check over every PL/pgSQL function of schema autodoctor: no error and no warning
-- (other, extra, performance, security and compatibility warnings all on). Trigger
-- functions are checked against each table they are attached to. The extension is created
-- inside this transaction and rolled back with it, so the deployed database never carries
-- it. Known false positives are listed in pg_temp.accepted below, each with its reason,
-- and asserted to still occur (so a stale exception is noticed too).
--
-- Where the server has no plpgsql_check (your own PGHOST without the Debian package
-- postgresql-15-plpgsql-check, or a role that may not create it), the file is skipped.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(5);
\ir helpers.psql

SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'plpgsql_check')
       AND (EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'plpgsql_check')
            OR (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)) AS can_check
\gset

\if :can_check
CREATE EXTENSION IF NOT EXISTS plpgsql_check SCHEMA extensions;

-- (function name, message) pairs knowingly accepted, each with its reason.
CREATE TEMP TABLE accepted (fn text, message text, reason text NOT NULL);
INSERT INTO accepted VALUES
    ('autodoctor.enable_realtime', 'immutable expression without parameters found',
     'It EXECUTEs a constant CREATE FUNCTION on purpose: the trigger function names '
     'realtime.send, so it can exist only where Supabase Realtime''s schema does.');

-- Real findings reported to the lead, not yet fixed in the SQL: excluded from the main
-- assertion and asserted as TODO below, so the suite stays green meanwhile.
CREATE TEMP TABLE known_issues (fn text, message text, fix text NOT NULL);
INSERT INTO known_issues VALUES
    ('autodoctor.relay_events', 'target type is different type than source type',
     'count(*) (bigint) is read INTO v_count integer: declare v_count bigint or cast.');

-- Every PL/pgSQL function with the relation to check it against (0 for non-triggers).
CREATE TEMP VIEW to_check AS
SELECT p.oid AS fn, coalesce(t.tgrelid, 0) AS relid
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language l ON l.oid = p.prolang
  LEFT JOIN pg_catalog.pg_trigger t ON t.tgfoid = p.oid AND NOT t.tgisinternal
 WHERE n.nspname = 'autodoctor' AND l.lanname = 'plpgsql';

CREATE TEMP TABLE findings AS
SELECT c.fn::regprocedure AS fn, 'autodoctor.' || p.proname AS name, c.relid::regclass AS relid,
       r.lineno, r.sqlstate, r.message, r.level
  FROM to_check c
  JOIN pg_catalog.pg_proc p ON p.oid = c.fn
 CROSS JOIN LATERAL extensions.plpgsql_check_function_tb(
        c.fn, c.relid,
        fatal_errors => false, other_warnings => true, extra_warnings => true,
        performance_warnings => true, security_warnings => true, compatibility_warnings => true) AS r;

SELECT cmp_ok((SELECT count(*)::int FROM to_check), '>', 10,
    'plpgsql_check should have PL/pgSQL functions of schema autodoctor to check');
SELECT is_empty(
    $$SELECT f.fn, f.relid, f.lineno, f.level, f.message FROM pg_temp.findings f
       WHERE NOT EXISTS (SELECT 1 FROM pg_temp.accepted a WHERE a.fn = f.name AND a.message = f.message)
         AND NOT EXISTS (SELECT 1 FROM pg_temp.known_issues k WHERE k.fn = f.name AND k.message = f.message)$$,
    'plpgsql_check should report no error and no warning on any PL/pgSQL function of schema autodoctor');
SELECT is_empty(
    $$SELECT a.fn, a.message FROM pg_temp.accepted a
       WHERE NOT EXISTS (SELECT 1 FROM pg_temp.findings f WHERE f.name = a.fn AND f.message = a.message)$$,
    'every accepted plpgsql_check finding should still occur (else drop it from the list)');

SELECT is_empty(
    $$SELECT f.fn, f.lineno, f.message, k.fix FROM pg_temp.findings f
        JOIN pg_temp.known_issues k ON k.fn = f.name AND k.message = f.message$$,
    'plpgsql_check: the known issues should be fixed');

-- A control, so that a silent checker cannot pass the file: a function reading a column
-- that does not exist must be reported.
CREATE FUNCTION pg_temp.broken()
RETURNS integer
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN (SELECT s.no_such_column FROM autodoctor.sessions s LIMIT 1);
END
$$;
SELECT isnt_empty(
    $$SELECT * FROM extensions.plpgsql_check_function_tb('pg_temp.broken()'::regprocedure)
       WHERE level = 'error'$$,
    'plpgsql_check should report an error in a function reading a missing column (control)');
\else
SELECT skip('plpgsql_check is not available on this server (or may not be created by this role)', 5);
\endif

SELECT * FROM finish();
ROLLBACK;

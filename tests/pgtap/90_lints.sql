-- Catalog lints, as tests: the checks of Supabase's database linter (supabase/splinter)
-- that apply to this package, re-implemented over schema autodoctor (which a Supabase
-- project exposes to its API: splinter's "exposed schema"), plus the stricter house rules
-- of docs/design.md's security model. Each assertion is named after the splinter lint it ports
-- (its number and name) or after the house rule. Findings knowingly accepted are asserted
-- as exact sets, so a new one fails too; SECURITY.md says why each is accepted.
--
-- Not ported, because they read runtime statistics or Supabase platform settings rather
-- than the schema: 0005 unused_index, 0020 table_bloat, 0022 extension_versions_outdated,
-- 0012 auth_allow_anonymous_sign_ins, 0019 insecure_queue_exposed_in_api (pgmq),
-- 0025 public_bucket_allows_listing (storage).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(40);
\ir helpers.psql

CREATE TEMP VIEW our_tables AS
SELECT c.oid, c.relname, c.relrowsecurity, c.relowner, c.reloptions, c.relispartition
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'autodoctor' AND c.relkind IN ('r', 'p');
CREATE TEMP VIEW our_functions AS
SELECT p.oid, p.proname, p.prosecdef, p.proconfig, p.proowner, p.prosrc
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'autodoctor';
-- Policies with their deparsed expressions and the roles they apply to (0 = PUBLIC).
CREATE TEMP VIEW our_policies AS
SELECT c.relname, pol.polname, pol.polpermissive, pol.polroles,
       CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                       WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS cmd,
       pg_catalog.pg_get_expr(pol.polqual, pol.polrelid) AS qual,
       pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid) AS with_check
  FROM pg_catalog.pg_policy pol
  JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'autodoctor';

-- ---------------------------------------------------------------------------------------
-- Security lints
-- ---------------------------------------------------------------------------------------
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_temp.our_functions p
       WHERE NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) AS c WHERE c LIKE 'search\_path=%')$$,
    'splinter 0011 function_search_path_mutable: every function in autodoctor should set search_path');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
       WHERE p.prosecdef
         AND p.pronamespace IN (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname IN ('autodoctor', 'auth'))
         AND NOT coalesce(p.proconfig @> ARRAY['search_path=""'], false)$$,
    'house rule: every SECURITY DEFINER function (autodoctor, auth) should pin search_path to the empty string');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
       WHERE p.prosecdef AND has_function_privilege('anon', p.oid, 'EXECUTE')
         AND p.pronamespace IN (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname IN ('autodoctor', 'auth', 'public'))$$,
    'splinter 0028 anon_security_definer_function_executable: anon should execute no SECURITY DEFINER function');
-- Accepted: the customer- and mechanic-facing contract functions are SECURITY DEFINER
-- (they write past RLS) and authenticated calls them; each authorises its caller first.
SELECT set_eq(
    $$SELECT p.proname::text FROM pg_temp.our_functions p
       WHERE p.prosecdef AND has_function_privilege('authenticated', p.oid, 'EXECUTE')$$,
    ARRAY['create_session_request', 'submit_intake', 'cancel_session_request', 'accept_session_request',
          'claim_orphaned_session', 'transition_session', 'set_mechanic_availability'],
    'splinter 0029 authenticated_security_definer_function_executable: accepted for exactly the seven contract functions');
SELECT is_empty(
    $$SELECT p.proname FROM pg_temp.our_functions p
       WHERE p.prosecdef AND has_function_privilege('authenticated', p.oid, 'EXECUTE')
         AND position('autodoctor._caller()' IN p.prosrc) = 0$$,
    'house rule: each definer function authenticated may call should identify its caller with autodoctor._caller()');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_temp.our_functions p
       WHERE has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'house rule: no function in autodoctor should be executable by PUBLIC');
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND c.relkind = 'v'
         AND (has_table_privilege('anon', c.oid, 'SELECT') OR has_table_privilege('authenticated', c.oid, 'SELECT'))
         AND NOT lower(coalesce(c.reloptions::text, '{}'))::text[]
                 && ARRAY['security_invoker=1', 'security_invoker=true', 'security_invoker=yes', 'security_invoker=on']$$,
    'splinter 0010 security_definer_view: no view readable by anon or authenticated should run as its owner');
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND c.relkind = 'v'
         AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)$$,
    'house rule: every view in autodoctor should be security_invoker, whoever may read it');
SELECT is_empty(
    $$SELECT t.relname FROM pg_temp.our_tables t
       WHERE NOT t.relrowsecurity
         AND (has_table_privilege('anon', t.oid, 'SELECT') OR has_table_privilege('authenticated', t.oid, 'SELECT'))$$,
    'splinter 0013 rls_disabled_in_public: no table of the exposed schema readable by anon or authenticated should lack RLS');
SELECT is_empty(
    $$SELECT t.relname FROM pg_temp.our_tables t WHERE NOT t.relrowsecurity$$,
    'house rule: every table in autodoctor should have row-level security enabled');
SELECT is_empty(
    $$SELECT t.relname, t.relowner::regrole FROM pg_temp.our_tables t
       WHERE EXISTS (SELECT 1 FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'authenticator']) AS r(role)
                      WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.role)
                        AND pg_has_role(r.role, t.relowner, 'MEMBER'))$$,
    'house rule: no table should be owned by a role applications use (or can become), which would bypass RLS');
SELECT is_empty(
    $$SELECT p.oid::regprocedure, p.proowner::regrole FROM pg_temp.our_functions p
       WHERE EXISTS (SELECT 1 FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'authenticator']) AS r(role)
                      WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.role)
                        AND pg_has_role(r.role, p.proowner, 'MEMBER'))$$,
    'house rule: no function should be owned by a role applications use (a caller could redefine it)');
SELECT is_empty(
    $$SELECT t.relname FROM pg_temp.our_tables t
       WHERE t.relrowsecurity AND NOT t.relispartition
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = t.oid)$$,
    'splinter 0008 rls_enabled_no_policy: every table with RLS should have a policy (else only its owner reads it)');
-- Accepted: a partition has RLS on and no policy nor grant, so it is deny-all when
-- queried directly; rows are read through the parent, whose policies apply.
SELECT is_empty(
    $$SELECT t.relname, r.role FROM pg_temp.our_tables t
       CROSS JOIN unnest(ARRAY['anon', 'authenticated', 'service_role', 'public']) AS r(role)
       WHERE t.relispartition
         AND (EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = t.oid)
              OR has_table_privilege(r.role, t.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE'))$$,
    'splinter 0008 (accepted for partitions): a partition has no policy and no grant, so it is reached only through its parent');
SELECT is_empty(
    $$SELECT t.relname FROM pg_temp.our_tables t
       WHERE NOT t.relrowsecurity AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = t.oid)$$,
    'splinter 0007 policy_exists_rls_disabled: no table should have policies that RLS being off ignores');
SELECT is_empty(
    $$SELECT p.relname, p.polname FROM pg_temp.our_policies p
       WHERE (SELECT count(*) FROM regexp_matches(coalesce(p.qual, '') || ' ' || coalesce(p.with_check, ''),
                                                  '(auth\.(uid|jwt|role|email)\(\)|current_setting\()', 'g'))
          <> (SELECT count(*) FROM regexp_matches(coalesce(p.qual, '') || ' ' || coalesce(p.with_check, ''),
                                                  'SELECT (auth\.(uid|jwt|role|email)\(\)|current_setting\()', 'gi'))$$,
    'splinter 0003 auth_rls_initplan: every auth.<function>() and current_setting() in a policy should be wrapped in (SELECT ...)');
SELECT is_empty(
    $$SELECT p.relname, p.polname FROM pg_temp.our_policies p
       WHERE coalesce(p.qual, '') || coalesce(p.with_check, '') ~* '(user_metadata|raw_user_meta_data|raw_app_meta_data)'$$,
    'splinter 0015 rls_references_user_metadata: no policy should trust user-editable metadata');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_temp.our_functions p
       WHERE p.prosrc ~* 'raw_user_meta_data' AND p.proname <> '_handle_new_user'$$,
    'house rule: only the profile trigger reads raw_user_meta_data (users write it themselves)');
SELECT is(
    (SELECT array_agg(DISTINCT m[1] ORDER BY m[1]) FROM pg_temp.our_functions p,
            regexp_matches(p.prosrc, 'raw_user_meta_data\s*->>?\s*''([^'']+)''', 'g') AS m
      WHERE p.proname = '_handle_new_user'),
    ARRAY['full_name'],
    'house rule: the profile trigger takes only full_name from raw_user_meta_data, never a role');
SELECT is_empty(
    $$SELECT p.relname, p.polname, p.cmd FROM pg_temp.our_policies p
       WHERE p.polpermissive
         AND (p.polroles = ARRAY[0::oid]
              OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r WHERE r::regrole::text IN ('anon', 'authenticated')))
         AND ((p.cmd IN ('UPDATE', 'DELETE', 'ALL')
               AND (p.qual IS NULL OR replace(lower(p.qual), ' ', '') IN ('true', '(true)', '1=1', '(1=1)')))
              OR (p.cmd IN ('INSERT', 'UPDATE', 'ALL')
                  AND replace(lower(coalesce(p.with_check, 'true')), ' ', '') IN ('true', '(true)', '1=1', '(1=1)')))$$,
    'splinter 0024 rls_policy_always_true: no write policy for anon or authenticated should allow every row');
SELECT is_empty(
    $$SELECT p.relname, p.polname FROM pg_temp.our_policies p
       WHERE (p.polroles = ARRAY[0::oid]
              OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r WHERE r::regrole::text IN ('anon', 'authenticated')))
         AND (p.qual IS NULL OR replace(lower(p.qual), ' ', '') IN ('true', '(true)', '1=1', '(1=1)'))$$,
    'house rule: no policy of any command should let anon or authenticated read every row (USING true is for service_role only)');
SELECT is_empty(
    $$SELECT p.relname, p.polname FROM pg_temp.our_policies p WHERE p.cmd <> 'SELECT' OR p.polroles = ARRAY[0::oid]$$,
    'house rule: only SELECT policies, each to named roles (writes go through the functions)');
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_catalog.pg_depend d ON d.refobjid = 'auth.users'::regclass AND d.deptype = 'n'
        JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid AND rw.ev_class = c.oid
       WHERE n.nspname = 'autodoctor' AND c.relkind IN ('v', 'm')
         AND (has_table_privilege('anon', c.oid, 'SELECT') OR has_table_privilege('authenticated', c.oid, 'SELECT'))$$,
    'splinter 0002 auth_users_exposed: no view readable by anon or authenticated should read auth.users');
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND c.relkind = 'm'$$,
    'splinter 0016 materialized_view_in_api: no materialized view (it would bypass RLS)');
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND c.relkind = 'f'$$,
    'splinter 0017 foreign_table_in_api: no foreign table (it would bypass RLS)');
SELECT is_empty(
    $$SELECT con.conrelid::regclass, con.conname FROM pg_catalog.pg_constraint con
        JOIN pg_catalog.pg_index i ON i.indexrelid = con.conindid
       WHERE con.contype = 'f' AND con.connamespace = 'autodoctor'::regnamespace
         AND con.confrelid IN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relnamespace = 'auth'::regnamespace)
         AND i.indisunique AND NOT i.indisprimary$$,
    'splinter 0021 fkey_to_auth_unique: foreign keys into auth should reference a primary key');
SELECT is_empty(
    $$SELECT t.relname, a.attname FROM pg_temp.our_tables t
        JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
       WHERE NOT t.relrowsecurity
         AND (has_table_privilege('anon', t.oid, 'SELECT') OR has_table_privilege('authenticated', t.oid, 'SELECT'))
         AND replace(lower(a.attname), '-', '_') ~ '(password|passwd|secret|token|jwt|api_?key|private_key|session_id|ssn|credit_card|card_number|iban|otp)'$$,
    'splinter 0023 sensitive_columns_exposed: no table without RLS exposes a credential-like column');
SELECT is_empty(
    $$SELECT e.extname FROM pg_catalog.pg_extension e
       WHERE e.extnamespace = 'public'::regnamespace AND e.extname <> 'plpgsql'$$,
    'splinter 0014 extension_in_public: no extension should live in schema public');
-- Accepted (splinter 0027 pg_graphql_authenticated_table_exposed, if pg_graphql exposes the
-- schema): signed-in users read these relations, filtered row by row.
SELECT set_eq(
    $$SELECT c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND has_table_privilege('authenticated', c.oid, 'SELECT')
         AND (c.relrowsecurity OR coalesce(c.reloptions @> ARRAY['security_invoker=true'], false))$$,
    $$SELECT c.relname::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND has_table_privilege('authenticated', c.oid, 'SELECT')$$,
    'splinter 0027 (accepted): every relation authenticated may read is row-filtered (RLS, or a security_invoker view)');
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND has_table_privilege('anon', c.oid, 'SELECT')$$,
    'splinter 0026 pg_graphql_anon_table_exposed: anon should read no relation');
SELECT is_empty(
    $$SELECT n.nspname, r.role FROM pg_catalog.pg_namespace n
       CROSS JOIN unnest(ARRAY['anon', 'authenticated', 'service_role', 'public']) AS r(role)
       WHERE (n.nspname = 'autodoctor'
              OR (n.nspname IN ('auth', 'extensions')
                  AND obj_description(n.oid, 'pg_namespace') LIKE 'autodoctor-db: created by%'))
         AND has_schema_privilege(r.role, n.oid, 'CREATE')$$,
    'house rule: no application role may create objects in the schemas the package owns (no shadowing)');
SELECT is_empty(
    $$SELECT x.kind, x.name, a.grantee::regrole FROM (
            SELECT 'relation' AS kind, c.relname::text AS name, c.relacl AS acl
              FROM pg_catalog.pg_class c WHERE c.relnamespace = 'autodoctor'::regnamespace
            UNION ALL
            SELECT 'function', p.oid::regprocedure::text, p.proacl
              FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'autodoctor'::regnamespace
            UNION ALL
            SELECT 'schema', n.nspname::text, n.nspacl FROM pg_catalog.pg_namespace n WHERE n.nspname = 'autodoctor'
       ) AS x CROSS JOIN LATERAL aclexplode(x.acl) AS a
       WHERE a.is_grantable AND a.grantee <> (SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname = 'autodoctor')$$,
    'house rule: no privilege in autodoctor is granted WITH GRANT OPTION');
SELECT is(
    ARRAY(SELECT p.proname::text FROM pg_catalog.pg_proc p
           WHERE p.pronamespace = 'autodoctor'::regnamespace
             AND p.prolang = (SELECT l.oid FROM pg_catalog.pg_language l WHERE l.lanname = 'sql')
             AND p.proconfig IS NOT NULL
           ORDER BY p.proname COLLATE "C"),
    ARRAY[
        -- Bound to PostGIS by identity (BEGIN ATOMIC: PostGIS may live in any schema).
        -- _make_point builds points, _within is accept's and claim's radius check; the KNN
        -- searches run in the worker's fan-out and in auto-assignment.
        '_make_point',
        '_nearest_available_mechanics',
        '_queue_new_request_emails',
        '_within',
        -- A report run on demand.
        'check_invariants'],
    'house rule: helpers are PL/pgSQL, not SQL functions that set search_path (those cannot '
    'be inlined, and every statement calling one plans its body again)');

-- ---------------------------------------------------------------------------------------
-- Performance and hygiene lints
-- ---------------------------------------------------------------------------------------
SELECT is_empty(
    $$SELECT con.conrelid::regclass, con.conname FROM pg_catalog.pg_constraint con
       WHERE con.contype = 'f' AND con.connamespace = 'autodoctor'::regnamespace
         AND NOT EXISTS (
             SELECT 1 FROM pg_catalog.pg_index i
              WHERE i.indrelid = con.conrelid AND i.indisvalid
                AND (string_to_array(i.indkey::text, ' ')::smallint[])[1:cardinality(con.conkey)] = con.conkey)$$,
    'splinter 0001 unindexed_foreign_keys: every foreign key should have an index led by its columns');
SELECT is_empty(
    $$SELECT t.relname FROM pg_temp.our_tables t
       WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = t.oid AND i.indisprimary)$$,
    'splinter 0004 no_primary_key: every table should have a primary key');
SELECT is_empty(
    $$SELECT p.relname, r.rolname, a.cmd, array_agg(p.polname)
        FROM pg_temp.our_policies p
        JOIN pg_catalog.pg_roles r ON p.polroles @> ARRAY[r.oid] OR p.polroles = ARRAY[0::oid]
       CROSS JOIN LATERAL unnest(CASE WHEN p.cmd = 'ALL' THEN ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']
                                      ELSE ARRAY[p.cmd] END) AS a(cmd)
       WHERE p.polpermissive AND r.rolname NOT LIKE 'pg\_%' AND NOT r.rolbypassrls
       GROUP BY p.relname, r.rolname, a.cmd HAVING count(*) > 1$$,
    'splinter 0006 multiple_permissive_policies: one permissive policy per table, role and command');
SELECT is_empty(
    $$SELECT i.tablename, array_agg(i.indexname) FROM pg_catalog.pg_indexes i
       WHERE i.schemaname = 'autodoctor'
       GROUP BY i.tablename, replace(i.indexdef, i.indexname, '') HAVING count(*) > 1$$,
    'splinter 0009 duplicate_index: no two identical indexes');
SELECT is_empty(
    $$SELECT i.indexrelid::regclass FROM pg_catalog.pg_index i
       WHERE i.indrelid IN (SELECT oid FROM pg_temp.our_tables) AND NOT (i.indisvalid AND i.indisready)$$,
    'splinter invalid_index: no invalid or unready index (a failed CREATE INDEX CONCURRENTLY)');
SELECT is_empty(
    $$SELECT t.relname FROM pg_temp.our_tables t
       WHERE t.reloptions && ARRAY['autovacuum_enabled=false', 'autovacuum_enabled=off', 'autovacuum_enabled=0']$$,
    'splinter autovacuum_disabled: autovacuum should stay on for every table');
SELECT is_empty(
    $$SELECT c.relname, a.attname, a.atttypid::regtype FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
       WHERE c.relnamespace = 'autodoctor'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
         AND a.atttypid IN ('regcollation'::regtype, 'regconfig'::regtype, 'regdictionary'::regtype,
                            'regnamespace'::regtype, 'regoper'::regtype, 'regoperator'::regtype,
                            'regproc'::regtype, 'regprocedure'::regtype)$$,
    'splinter 0018 unsupported_reg_types: no column of a reg* type pg_upgrade cannot carry');

SELECT * FROM finish();
ROLLBACK;

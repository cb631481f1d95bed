-- The catalog: schema, enums, tables and key columns, row-level security and its
-- policies, the dashboard view, every function's signature, definer flag and grants,
-- and the splinter-style rules of docs/design.md's security model, checked over the whole
-- schema so that objects added later are held to them too.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

SELECT plan(271);
\ir helpers.psql

-- ---------------------------------------------------------------------------------------
-- Schema and extensions
-- ---------------------------------------------------------------------------------------
SELECT has_schema('autodoctor', 'schema autodoctor should exist');
SELECT schema_privs_are('autodoctor', 'authenticated', ARRAY['USAGE'],
    'authenticated should have only USAGE on schema autodoctor');
SELECT schema_privs_are('autodoctor', 'service_role', ARRAY['USAGE'],
    'service_role should have only USAGE on schema autodoctor');
SELECT schema_privs_are('autodoctor', 'anon', ARRAY[]::name[],
    'anon should have no privilege on schema autodoctor');
SELECT schema_privs_are('autodoctor', 'public', ARRAY[]::name[],
    'PUBLIC should have no privilege on schema autodoctor');
-- Where PostGIS is missing, deploy creates it in schema extensions (as on Supabase). It
-- may also live in public, where someone installed it before (tests/python/
-- test_migrations.py deploys into both layouts); this database is the first kind.
SELECT is(
    (SELECT n.nspname::text FROM pg_catalog.pg_extension e
       JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'postgis'),
    'extensions',
    'PostGIS created by deploy should live in schema extensions');
-- splinter's extension_in_public: deploy itself never puts an extension in public (pg_cron
-- goes to pg_catalog, its tables to schema cron).
SELECT is_empty(
    $$SELECT e.extname FROM pg_catalog.pg_extension e
        JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
       WHERE n.nspname = 'public'$$,
    'no extension should live in schema public');
SELECT has_function('auth', 'uid', ARRAY[]::name[], 'auth.uid() should exist');

-- ---------------------------------------------------------------------------------------
-- Enums
-- ---------------------------------------------------------------------------------------
SELECT enum_has_labels('autodoctor', 'session_type', ARRAY['chat', 'video', 'diagnostic'],
    'session_type should have the labels chat, video, diagnostic');
SELECT enum_has_labels('autodoctor', 'session_status',
    ARRAY['pending', 'scheduled', 'waiting', 'live', 'completed', 'cancelled'],
    'session_status should have the six FSM states in order');
SELECT enum_has_labels('autodoctor', 'session_request_status',
    ARRAY['pending', 'accepted', 'cancelled', 'expired'],
    'session_request_status should have pending, accepted, cancelled, expired');

-- ---------------------------------------------------------------------------------------
-- Tables, view and key columns
-- ---------------------------------------------------------------------------------------
SELECT has_table('autodoctor', t, format('table autodoctor.%s should exist', t))
  FROM unnest(ARRAY['profiles', 'mechanics', 'plans', 'intakes', 'session_requests',
                    'sessions', 'session_events', 'settings']::name[]) AS t;
SELECT has_view('autodoctor', 'incoming_requests', 'view autodoctor.incoming_requests should exist');

-- profiles
SELECT col_is_pk('autodoctor', 'profiles', 'id', 'profiles.id should be the primary key');
SELECT col_type_is('autodoctor', 'profiles', 'id', 'uuid', 'profiles.id should be uuid');
SELECT fk_ok('autodoctor', 'profiles', 'id', 'auth', 'users', 'id',
    'profiles.id should reference auth.users.id');
SELECT has_trigger('auth', 'users', 'autodoctor_on_auth_user_created',
    'auth.users should have the trigger creating profiles');
SELECT trigger_is('auth', 'users', 'autodoctor_on_auth_user_created', 'autodoctor', '_handle_new_user',
    'the auth.users trigger should call autodoctor._handle_new_user');
-- mechanics
SELECT col_is_pk('autodoctor', 'mechanics', 'user_id', 'mechanics.user_id should be the primary key');
SELECT col_type_is('autodoctor', 'mechanics', 'active', 'boolean', 'mechanics.active should be boolean');
SELECT col_default_is('autodoctor', 'mechanics', 'online', 'false',
    'mechanics.online should default to false');
SELECT col_type_is('autodoctor', 'mechanics', 'expertise', 'autodoctor.session_type[]',
    'mechanics.expertise should be session_type[]');
SELECT col_type_is('autodoctor', 'mechanics', 'location', 'extensions', 'geography(Point,4326)',
    'mechanics.location should be geography(Point,4326)');
SELECT col_type_is('autodoctor', 'mechanics', 'service_radius_km', 'numeric',
    'mechanics.service_radius_km should be numeric');
SELECT col_type_is('autodoctor', 'mechanics', 'max_concurrent_sessions', 'integer',
    'mechanics.max_concurrent_sessions should be integer');
-- plans
SELECT col_is_pk('autodoctor', 'plans', 'code', 'plans.code should be the primary key');
SELECT col_type_is('autodoctor', 'plans', 'allowed_types', 'autodoctor.session_type[]',
    'plans.allowed_types should be session_type[]');
SELECT is(
    (SELECT allowed_types FROM autodoctor.plans WHERE code = 'free' AND active),
    enum_range(NULL::autodoctor.session_type),
    'plan free should be deployed, active, and allow every session type');
-- intakes
SELECT col_type_is('autodoctor', 'intakes', 'customer_id', 'uuid', 'intakes.customer_id should be uuid');
SELECT col_type_is('autodoctor', 'intakes', 'location', 'extensions', 'geography(Point,4326)',
    'intakes.location should be geography(Point,4326)');
-- session_requests
SELECT col_is_pk('autodoctor', 'session_requests', 'id', 'session_requests.id should be the primary key');
SELECT col_type_is('autodoctor', 'session_requests', 'status', 'autodoctor.session_request_status',
    'session_requests.status should be session_request_status');
SELECT col_default_is('autodoctor', 'session_requests', 'status', 'pending',
    'session_requests.status should default to pending');
SELECT col_type_is('autodoctor', 'session_requests', 'session_type', 'autodoctor.session_type',
    'session_requests.session_type should be session_type');
SELECT col_type_is('autodoctor', 'session_requests', 'expires_at', 'timestamp with time zone',
    'session_requests.expires_at should be timestamptz');
SELECT col_not_null('autodoctor', 'session_requests', 'expires_at',
    'session_requests.expires_at should be NOT NULL');
SELECT col_type_is('autodoctor', 'session_requests', 'session_id', 'uuid',
    'session_requests.session_id should be uuid');
SELECT fk_ok('autodoctor', 'session_requests', 'session_id', 'autodoctor', 'sessions', 'id',
    'session_requests.session_id should reference sessions.id');
SELECT col_type_is('autodoctor', 'session_requests', 'intake_id', 'uuid',
    'session_requests.intake_id should be uuid');
SELECT col_type_is('autodoctor', 'session_requests', 'idempotency_key', 'text',
    'session_requests.idempotency_key should be text');
SELECT index_is_unique('autodoctor', 'session_requests', 'session_requests_idempotency_key_idx',
    'session_requests should have a unique index on (customer_id, idempotency_key, market)');
SELECT col_type_is('autodoctor', 'session_requests', 'location', 'extensions', 'geography(Point,4326)',
    'session_requests.location should be geography(Point,4326)');
-- sessions
SELECT col_is_pk('autodoctor', 'sessions', 'id', 'sessions.id should be the primary key');
SELECT col_type_is('autodoctor', 'sessions', 'status', 'autodoctor.session_status',
    'sessions.status should be session_status');
SELECT col_type_is('autodoctor', 'sessions', 'request_id', 'uuid', 'sessions.request_id should be uuid');
SELECT col_is_unique('autodoctor', 'sessions', ARRAY['request_id']::name[],
    'sessions.request_id should be unique: one session per request');
SELECT fk_ok('autodoctor', 'sessions', 'request_id', 'autodoctor', 'session_requests', 'id',
    'sessions.request_id should reference session_requests.id');
SELECT col_type_is('autodoctor', 'sessions', 'mechanic_id', 'uuid', 'sessions.mechanic_id should be uuid');
-- session_events
SELECT col_is_pk('autodoctor', 'session_events', ARRAY['id', 'at'], 'session_events should be keyed by (id, at): partitioned by month of at');
SELECT col_type_is('autodoctor', 'session_events', 'id', 'bigint', 'session_events.id should be bigint');
SELECT is(
    (SELECT attidentity::text FROM pg_catalog.pg_attribute
      WHERE attrelid = 'autodoctor.session_events'::regclass AND attname = 'id'),
    'a',
    'session_events.id should be GENERATED ALWAYS AS IDENTITY');
SELECT col_type_is('autodoctor', 'session_events', 'txid', 'xid8', 'session_events.txid should be xid8');
SELECT col_type_is('autodoctor', 'session_events', 'event', 'text', 'session_events.event should be text');
SELECT has_trigger('autodoctor', 'session_events', 'session_events_notify',
    'session_events should have the broadcast trigger');
SELECT trigger_is('autodoctor', 'session_events', 'session_events_notify', 'autodoctor', '_notify_event',
    'the broadcast trigger should call autodoctor._notify_event');
SELECT has_trigger('autodoctor', 'session_events', 'session_events_append_only',
    'session_events should have the append-only trigger');
SELECT trigger_is('autodoctor', 'session_events', 'session_events_append_only',
    'autodoctor', '_forbid_event_change',
    'the append-only trigger should call autodoctor._forbid_event_change');
-- settings
SELECT col_type_is('autodoctor', 'settings', 'request_ttl', 'interval', 'settings.request_ttl should be interval');
SELECT col_default_is('autodoctor', 'settings', 'request_ttl', interval '24 hours',
    'settings.request_ttl should default to 24 hours');
SELECT is((SELECT count(*)::int FROM autodoctor.settings), 1,
    'settings should hold exactly one row');
-- incoming_requests
SELECT columns_are('autodoctor', 'incoming_requests',
    ARRAY['id', 'created_at', 'expires_at', 'session_type', 'plan_code', 'customer_name',
          'notes', 'intake_id', 'distance_km']::name[],
    'incoming_requests should have the columns of the mechanic dashboard');
SELECT ok(
    (SELECT c.reloptions @> ARRAY['security_invoker=true'] FROM pg_catalog.pg_class c
      WHERE c.oid = 'autodoctor.incoming_requests'::regclass),
    'incoming_requests should be security_invoker, so RLS applies to its caller');
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND c.relkind = 'v'
         AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)$$,
    'every view in schema autodoctor should be security_invoker');

-- ---------------------------------------------------------------------------------------
-- Row-level security and policies (one SELECT policy per role; no write policies)
-- ---------------------------------------------------------------------------------------
SELECT ok(
    (SELECT c.relrowsecurity FROM pg_catalog.pg_class c WHERE c.oid = ('autodoctor.' || t)::regclass),
    format('autodoctor.%s should have row-level security enabled', t))
  FROM unnest(ARRAY['profiles', 'mechanics', 'plans', 'intakes', 'session_requests',
                    'sessions', 'session_events', 'settings']) AS t;
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity$$,
    'every table in schema autodoctor should have row-level security enabled');

SELECT policies_are('autodoctor', 'profiles',
    ARRAY['profiles_select_authenticated', 'profiles_select_service'],
    'profiles should have exactly its two SELECT policies');
SELECT policies_are('autodoctor', 'mechanics',
    ARRAY['mechanics_select_authenticated', 'mechanics_select_service'],
    'mechanics should have exactly its two SELECT policies');
SELECT policies_are('autodoctor', 'plans',
    ARRAY['plans_select_authenticated', 'plans_select_service'],
    'plans should have exactly its two SELECT policies');
SELECT policies_are('autodoctor', 'intakes',
    ARRAY['intakes_select_authenticated', 'intakes_select_service'],
    'intakes should have exactly its two SELECT policies');
SELECT policies_are('autodoctor', 'session_requests',
    ARRAY['session_requests_select_authenticated', 'session_requests_select_service'],
    'session_requests should have exactly its two SELECT policies');
SELECT policies_are('autodoctor', 'sessions',
    ARRAY['sessions_select_authenticated', 'sessions_select_service'],
    'sessions should have exactly its two SELECT policies');
SELECT policies_are('autodoctor', 'session_events',
    ARRAY['session_events_select_authenticated', 'session_events_select_service'],
    'session_events should have exactly its two SELECT policies');
SELECT policies_are('autodoctor', 'settings',
    ARRAY['settings_select_service'],
    'settings should have only the service role''s SELECT policy');

SELECT policy_roles_are('autodoctor', p.tablename, p.policyname,
        ARRAY[CASE WHEN p.policyname LIKE '%\_authenticated' THEN 'authenticated' ELSE 'service_role' END]::name[],
        format('policy %s should apply only to role %s', p.policyname,
               CASE WHEN p.policyname LIKE '%\_authenticated' THEN 'authenticated' ELSE 'service_role' END))
  FROM pg_catalog.pg_policies p
 WHERE p.schemaname = 'autodoctor'
   AND p.tablename IN ('profiles', 'mechanics', 'plans', 'intakes', 'session_requests',
                       'sessions', 'session_events', 'settings')
 ORDER BY p.tablename, p.policyname;
SELECT is_empty(
    $$SELECT p.tablename, p.policyname FROM pg_catalog.pg_policies p
       WHERE p.schemaname = 'autodoctor' AND p.cmd <> 'SELECT'$$,
    'no policy should allow a write or use FOR ALL: writes go only through the functions');
SELECT is_empty(
    $$SELECT p.tablename, p.cmd, r.role, count(*) FROM pg_catalog.pg_policies p, unnest(p.roles) AS r(role)
       WHERE p.schemaname = 'autodoctor' AND p.permissive = 'PERMISSIVE'
       GROUP BY 1, 2, 3 HAVING count(*) > 1$$,
    'there should be one permissive policy per table, command and role');
SELECT is_empty(
    $$SELECT p.tablename, p.policyname FROM pg_catalog.pg_policies p
       WHERE p.schemaname = 'autodoctor'
         AND (SELECT count(*) FROM regexp_matches(coalesce(p.qual, '') || coalesce(p.with_check, ''),
                                                  'auth\.uid\(\)', 'g'))
          <> (SELECT count(*) FROM regexp_matches(coalesce(p.qual, '') || coalesce(p.with_check, ''),
                                                  'SELECT auth\.uid\(\)', 'g'))$$,
    'every auth.uid() in a policy should be wrapped as (SELECT auth.uid())');
SELECT is_empty(
    $$SELECT c.conrelid::regclass, c.conname
        FROM pg_catalog.pg_constraint c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace
       WHERE n.nspname = 'autodoctor' AND c.contype = 'f'
         AND NOT EXISTS (
             SELECT 1 FROM pg_catalog.pg_index i
              WHERE i.indrelid = c.conrelid
                AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)$$,
    'every foreign key in schema autodoctor should have a covering index');
SELECT is_empty(
    $$SELECT c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND c.relkind IN ('r', 'p', 'v')
         AND obj_description(c.oid, 'pg_class') IS NULL$$,
    'every table and view in schema autodoctor should have a COMMENT');
SELECT is_empty(
    $$SELECT pol.polname FROM pg_catalog.pg_policy pol
        JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'autodoctor' AND obj_description(pol.oid, 'pg_policy') IS NULL$$,
    'every policy in schema autodoctor should have a COMMENT');

-- ---------------------------------------------------------------------------------------
-- Table and view privileges: SELECT only, to the roles that read them; anon nothing
-- ---------------------------------------------------------------------------------------
SELECT table_privs_are('autodoctor', t.rel, r.role,
        CASE WHEN r.role = ANY (t.readers) THEN ARRAY['SELECT'] ELSE ARRAY[]::name[] END,
        format('role %s should have %s on autodoctor.%s', r.role,
               CASE WHEN r.role = ANY (t.readers) THEN 'only SELECT' ELSE 'no privilege' END, t.rel))
  FROM (VALUES
          ('profiles'::name, ARRAY['authenticated', 'service_role']::name[]),
          ('mechanics', ARRAY['authenticated', 'service_role']),
          ('plans', ARRAY['authenticated', 'service_role']),
          ('intakes', ARRAY['authenticated', 'service_role']),
          ('session_requests', ARRAY['service_role']),
          ('sessions', ARRAY['authenticated', 'service_role']),
          ('session_events', ARRAY['authenticated', 'service_role']),
          ('settings', ARRAY['service_role']),
          ('incoming_requests', ARRAY['authenticated'])
       ) AS t(rel, readers)
 CROSS JOIN unnest(ARRAY['authenticated', 'service_role', 'anon', 'public']::name[]) AS r(role)
 ORDER BY t.rel, r.role;
SELECT column_privs_are('autodoctor', 'session_requests', 'customer_email', 'authenticated',
        ARRAY[]::text[],
        'authenticated should not read session_requests.customer_email (mechanics see pending requests)');
SELECT column_privs_are('autodoctor', 'session_requests', c, 'authenticated', ARRAY['SELECT'],
        format('authenticated should read session_requests.%s', c))
  FROM unnest(ARRAY['id', 'customer_id', 'status', 'customer_name', 'notes', 'location',
                    'expires_at', 'market']) AS c;
SELECT is_empty(
    $$SELECT c.relname, r.role, p.priv
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['anon', 'public']) AS r(role)
       CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p(priv)
       WHERE n.nspname = 'autodoctor' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         AND has_table_privilege(r.role, c.oid, p.priv)$$,
    'anon and PUBLIC should have no privilege on any table or view in schema autodoctor');
SELECT is_empty(
    $$SELECT c.relname, r.role
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['authenticated', 'service_role', 'anon', 'public']) AS r(role)
       WHERE n.nspname = 'autodoctor' AND c.relkind = 'S'
         AND has_sequence_privilege(r.role, c.oid, 'USAGE,SELECT,UPDATE')$$,
    'no application role should have a privilege on a sequence in schema autodoctor');
SELECT is_empty(
    $$SELECT c.relname, r.role, p.priv
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['authenticated', 'service_role']) AS r(role)
       CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p(priv)
       WHERE n.nspname = 'autodoctor' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
         AND has_table_privilege(r.role, c.oid, p.priv)$$,
    'authenticated and service_role should not write any table directly (only through functions)');
SELECT is_empty(
    $$SELECT c.relname, a.attname, r.role
        FROM pg_catalog.pg_attribute a
        JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['anon', 'public']) AS r(role)
       WHERE n.nspname = 'autodoctor' AND a.attnum > 0 AND NOT a.attisdropped
         AND has_column_privilege(r.role, c.oid, a.attnum, 'SELECT,INSERT,UPDATE,REFERENCES')$$,
    'anon and PUBLIC should have no column privilege in schema autodoctor');

-- ---------------------------------------------------------------------------------------
-- Functions: signatures, return types, parameter names (part of the contract)
-- ---------------------------------------------------------------------------------------
SELECT has_function('autodoctor', 'create_session_request',
    ARRAY['autodoctor.session_type', 'text', 'text', 'text'],
    'create_session_request(session_type, text, text, text) should exist');
SELECT has_function('autodoctor', 'accept_session_request', ARRAY['uuid'],
    'accept_session_request(uuid) should exist');
SELECT has_function('autodoctor', 'cancel_session_request', ARRAY['uuid'],
    'cancel_session_request(uuid) should exist');
SELECT has_function('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'register_mechanic(uuid, session_type[], double precision, double precision, numeric, integer) should exist');
SELECT has_function('autodoctor', 'set_mechanic_availability',
    ARRAY['boolean', 'double precision', 'double precision'],
    'set_mechanic_availability(boolean, double precision, double precision) should exist');
SELECT has_function('autodoctor', '_caller', ARRAY[]::name[], '_caller() should exist');
SELECT has_function('autodoctor', '_point', ARRAY['double precision', 'double precision'],
    '_point(double precision, double precision) should exist');
SELECT has_function('autodoctor', '_require_plan', ARRAY['autodoctor.session_type', 'text'],
    '_require_plan(session_type, text) should exist');
SELECT has_function('autodoctor', '_request_ttl', ARRAY[]::name[], '_request_ttl() should exist');
SELECT has_function('autodoctor', '_log_event',
    ARRAY['text', 'uuid', 'uuid', 'uuid', 'text', 'text', 'autodoctor.session_type', 'text', 'jsonb'],
    '_log_event(text, uuid, uuid, uuid, text, text, session_type, text, jsonb) should exist');
SELECT has_function('autodoctor', '_handle_new_user', ARRAY[]::name[], '_handle_new_user() should exist');
SELECT has_function('autodoctor', '_notify_event', ARRAY[]::name[], '_notify_event() should exist');
SELECT has_function('autodoctor', '_forbid_event_change', ARRAY[]::name[], '_forbid_event_change() should exist');

SELECT function_returns('autodoctor', 'create_session_request',
    ARRAY['autodoctor.session_type', 'text', 'text', 'text'], 'autodoctor.session_requests',
    'create_session_request should return autodoctor.session_requests');
SELECT function_returns('autodoctor', 'accept_session_request', ARRAY['uuid'], 'autodoctor.sessions',
    'accept_session_request should return autodoctor.sessions');
SELECT function_returns('autodoctor', 'cancel_session_request', ARRAY['uuid'], 'autodoctor.session_requests',
    'cancel_session_request should return autodoctor.session_requests');
SELECT function_returns('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'autodoctor.mechanics', 'register_mechanic should return autodoctor.mechanics');
SELECT function_returns('autodoctor', 'set_mechanic_availability',
    ARRAY['boolean', 'double precision', 'double precision'], 'autodoctor.mechanics',
    'set_mechanic_availability should return autodoctor.mechanics');

SELECT is(
    (SELECT p.proargnames::text[] FROM pg_catalog.pg_proc p WHERE p.oid = f.sig::regprocedure),
    f.names,
    format('%s should take the contract''s parameter names %s', f.sig, f.names))
  FROM (VALUES
          ('autodoctor.create_session_request(autodoctor.session_type, text, text, text)',
           ARRAY['session_type', 'plan_code', 'notes', 'idempotency_key']),
          ('autodoctor.accept_session_request(uuid)', ARRAY['request_id']),
          ('autodoctor.cancel_session_request(uuid)', ARRAY['request_id']),
          ('autodoctor.register_mechanic(uuid, autodoctor.session_type[], double precision, double precision, numeric, integer)',
           ARRAY['user_id', 'expertise', 'latitude', 'longitude', 'service_radius_km', 'max_concurrent_sessions']),
          ('autodoctor.set_mechanic_availability(boolean, double precision, double precision)',
           ARRAY['online', 'latitude', 'longitude'])
       ) AS f(sig, names);
SELECT is(
    (SELECT p.pronargdefaults::int FROM pg_catalog.pg_proc p WHERE p.oid = f.sig::regprocedure),
    f.defaults,
    format('%s should have %s trailing parameters with defaults', f.sig, f.defaults))
  FROM (VALUES
          ('autodoctor.create_session_request(autodoctor.session_type, text, text, text)', 2),
          ('autodoctor.accept_session_request(uuid)', 0),
          ('autodoctor.cancel_session_request(uuid)', 0),
          ('autodoctor.register_mechanic(uuid, autodoctor.session_type[], double precision, double precision, numeric, integer)', 5),
          ('autodoctor.set_mechanic_availability(boolean, double precision, double precision)', 2)
       ) AS f(sig, defaults);

-- ---------------------------------------------------------------------------------------
-- Functions: SECURITY DEFINER only where they write past RLS; search_path = ''
-- ---------------------------------------------------------------------------------------
SELECT is_definer('autodoctor', 'create_session_request', ARRAY['autodoctor.session_type', 'text', 'text', 'text'],
    'create_session_request should be SECURITY DEFINER');
SELECT is_definer('autodoctor', 'accept_session_request', ARRAY['uuid'],
    'accept_session_request should be SECURITY DEFINER');
SELECT is_definer('autodoctor', 'cancel_session_request', ARRAY['uuid'],
    'cancel_session_request should be SECURITY DEFINER');
SELECT is_definer('autodoctor', 'register_mechanic',
    ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'],
    'register_mechanic should be SECURITY DEFINER');
SELECT is_definer('autodoctor', 'set_mechanic_availability', ARRAY['boolean', 'double precision', 'double precision'],
    'set_mechanic_availability should be SECURITY DEFINER');
SELECT is_definer('autodoctor', '_request_ttl', ARRAY[]::name[],
    '_request_ttl should be SECURITY DEFINER (column default evaluated for any inserter)');
SELECT is_definer('autodoctor', '_handle_new_user', ARRAY[]::name[],
    '_handle_new_user should be SECURITY DEFINER (the auth.users trigger writes profiles)');
SELECT isnt_definer('autodoctor', '_caller', ARRAY[]::name[], '_caller should not be SECURITY DEFINER');
SELECT isnt_definer('autodoctor', '_point', ARRAY['double precision', 'double precision'],
    '_point should not be SECURITY DEFINER');
SELECT isnt_definer('autodoctor', '_require_plan', ARRAY['autodoctor.session_type', 'text'],
    '_require_plan should not be SECURITY DEFINER');
SELECT isnt_definer('autodoctor', '_log_event',
    ARRAY['text', 'uuid', 'uuid', 'uuid', 'text', 'text', 'autodoctor.session_type', 'text', 'jsonb'],
    '_log_event should not be SECURITY DEFINER');
SELECT isnt_definer('autodoctor', '_notify_event', ARRAY[]::name[], '_notify_event should not be SECURITY DEFINER');
SELECT isnt_definer('autodoctor', '_event_position', ARRAY[]::name[],
    '_event_position should not be SECURITY DEFINER (only the package''s own functions log events)');
SELECT col_default_is('autodoctor', 'session_events', 'txid', 'autodoctor._event_position()',
    'session_events.txid should default to the event''s position, _event_position()');
SELECT isnt_definer('autodoctor', '_forbid_event_change', ARRAY[]::name[],
    '_forbid_event_change should not be SECURITY DEFINER');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'autodoctor'
         AND NOT coalesce(p.proconfig @> ARRAY['search_path=""'], false)$$,
    'every function in schema autodoctor should SET search_path = ''''');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'autodoctor' AND p.proname NOT LIKE '\_%' AND NOT p.prosecdef
         -- The one exception: it reads only what every role may read (pg_locks,
         -- pg_prepared_xacts) and writes nothing.
         AND p.proname <> 'event_watermark'$$,
    'every contract function (no leading underscore) should be SECURITY DEFINER');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'autodoctor' AND obj_description(p.oid, 'pg_proc') IS NULL$$,
    'every function in schema autodoctor should have a COMMENT');

-- ---------------------------------------------------------------------------------------
-- Function privileges: each contract function to the one role that needs it; private
-- helpers to nobody; anon and PUBLIC execute nothing
-- ---------------------------------------------------------------------------------------
SELECT function_privs_are('autodoctor', f.name, f.args, r.role,
        CASE WHEN r.role = f.grantee THEN ARRAY['EXECUTE'] ELSE ARRAY[]::name[] END,
        format('role %s should %s autodoctor.%s(%s)', r.role,
               CASE WHEN r.role = f.grantee THEN 'be granted EXECUTE on' ELSE 'not be able to execute' END,
               f.name, array_to_string(f.args, ', ')))
  FROM (VALUES
          ('create_session_request'::name, ARRAY['autodoctor.session_type', 'text', 'text', 'text']::name[], 'authenticated'::name),
          ('accept_session_request', ARRAY['uuid'], 'authenticated'),
          ('cancel_session_request', ARRAY['uuid'], 'authenticated'),
          ('set_mechanic_availability', ARRAY['boolean', 'double precision', 'double precision'], 'authenticated'),
          ('register_mechanic', ARRAY['uuid', 'autodoctor.session_type[]', 'double precision', 'double precision', 'numeric', 'integer'], 'service_role'),
          ('_caller', ARRAY[]::name[], NULL),
          ('_point', ARRAY['double precision', 'double precision'], NULL),
          ('_require_plan', ARRAY['autodoctor.session_type', 'text'], NULL),
          ('_request_ttl', ARRAY[]::name[], NULL),
          ('_log_event', ARRAY['text', 'uuid', 'uuid', 'uuid', 'text', 'text', 'autodoctor.session_type', 'text', 'jsonb'], NULL),
          ('_handle_new_user', ARRAY[]::name[], NULL),
          ('_notify_event', ARRAY[]::name[], NULL),
          ('_event_position', ARRAY[]::name[], NULL),
          ('_forbid_event_change', ARRAY[]::name[], NULL)
       ) AS f(name, args, grantee)
 CROSS JOIN unnest(ARRAY['authenticated', 'service_role', 'anon', 'public']::name[]) AS r(role)
 ORDER BY f.name, r.role;
SELECT is_empty(
    $$SELECT p.oid::regprocedure, r.role FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
       CROSS JOIN unnest(ARRAY['anon', 'public']) AS r(role)
       WHERE n.nspname = 'autodoctor' AND has_function_privilege(r.role, p.oid, 'EXECUTE')$$,
    'anon and PUBLIC should execute no function in schema autodoctor');
SELECT is_empty(
    $$SELECT p.oid::regprocedure, r.role FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
       CROSS JOIN unnest(ARRAY['authenticated', 'service_role']) AS r(role)
       WHERE n.nspname = 'autodoctor' AND p.proname LIKE '\_%'
         AND has_function_privilege(r.role, p.oid, 'EXECUTE')$$,
    'no application role should execute a private helper (leading underscore)');
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'autodoctor' AND p.proname NOT LIKE '\_%'
         AND has_function_privilege('authenticated', p.oid, 'EXECUTE')
         AND has_function_privilege('service_role', p.oid, 'EXECUTE')
         -- The one exception: both roles follow the event log (SECURITY INVOKER, no writes).
         AND p.proname <> 'event_watermark'$$,
    'no contract function should be granted to both authenticated and service_role');

-- Behaviour of the grants, as PostgREST would hit them: anon is refused before any of
-- the package's code runs (no USAGE on the schema), for every entry point.
SELECT is(pg_temp.anon_error_of(q.sql), '42501:', format('anon should be refused %s with 42501', q.what))
  FROM (VALUES
          ('create_session_request', $$SELECT autodoctor.create_session_request('chat', 'free')$$),
          ('accept_session_request', $$SELECT autodoctor.accept_session_request(gen_random_uuid())$$),
          ('cancel_session_request', $$SELECT autodoctor.cancel_session_request(gen_random_uuid())$$),
          ('set_mechanic_availability', $$SELECT autodoctor.set_mechanic_availability(true)$$),
          ('register_mechanic', $$SELECT autodoctor.register_mechanic(gen_random_uuid())$$),
          ('reading incoming_requests', $$SELECT * FROM autodoctor.incoming_requests$$),
          ('reading session_requests', $$SELECT * FROM autodoctor.session_requests$$),
          ('reading sessions', $$SELECT * FROM autodoctor.sessions$$),
          ('reading session_events', $$SELECT * FROM autodoctor.session_events$$)
       ) AS q(what, sql);

SELECT * FROM finish();
ROLLBACK;

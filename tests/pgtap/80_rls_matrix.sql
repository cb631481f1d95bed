-- The row-level security matrix: every role (anon, customer A, customer B, mechanic M1,
-- mechanic M2, service_role, and authenticated without claims) x every table and view of
-- schema autodoctor x SELECT / INSERT / UPDATE / DELETE, each cell asserted. A SELECT cell
-- names exactly the rows the role sees among this file's fixtures (or the error it gets);
-- a write cell names the refusal (42501, or 55000 for a view PostgreSQL cannot write
-- through). Then every function's EXECUTE grant, per role, and what calling it gives.
--
-- The relations and functions are read from the catalog, and the expectations are data
-- below: a relation or function added later without its row here fails the
-- "covers every ..." assertions instead of going unchecked.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;

-- ---------------------------------------------------------------------------------------
-- The specification (created before plan(), which counts its rows)
-- ---------------------------------------------------------------------------------------
-- Who acts: a fixture label (login), or service / anon / nobody.
CREATE TEMP TABLE whos (who text PRIMARY KEY, role name NOT NULL);
INSERT INTO whos VALUES
    ('anon', 'anon'), ('alice', 'authenticated'), ('bob', 'authenticated'),
    ('mia', 'authenticated'), ('max', 'authenticated'), ('service', 'service_role'),
    ('nobody', 'authenticated');

-- How each relation's rows are named: a query, run as the acting role, giving one label
-- per row (NULL for rows that are not this file's fixtures, such as other sessions' data).
CREATE TEMP TABLE rels (rel name PRIMARY KEY, labels text NOT NULL);
INSERT INTO rels VALUES
    ('profiles', 'SELECT pg_temp.lbl(id) FROM autodoctor.profiles'),
    ('mechanics', 'SELECT pg_temp.lbl(user_id) FROM autodoctor.mechanics'),
    ('plans', $$SELECT code FROM autodoctor.plans WHERE code IN ('free', 'standard', 'premium')$$),
    ('intakes', 'SELECT pg_temp.lbl(id) FROM autodoctor.intakes'),
    ('session_requests', 'SELECT pg_temp.lbl(id) FROM autodoctor.session_requests'),
    ('sessions', 'SELECT pg_temp.lbl(id) FROM autodoctor.sessions'),
    ('session_events', $$SELECT event || ':' || coalesce(pg_temp.lbl(request_id), pg_temp.lbl(session_id))
                          FROM autodoctor.session_events$$),
    ('notification_outbox', $$SELECT kind || ':' || pg_temp.lbl(request_id) || '>' || pg_temp.lbl(mechanic_id)
                               FROM autodoctor.notification_outbox$$),
    ('settings', $$SELECT 'settings' FROM autodoctor.settings$$),
    ('relay_state', $$SELECT 'relay_state' FROM autodoctor.relay_state$$),
    ('incoming_requests', 'SELECT pg_temp.lbl(id) FROM autodoctor.incoming_requests'),
    ('my_sessions', 'SELECT pg_temp.lbl(id) FROM autodoctor.my_sessions'),
    ('orphaned_sessions', 'SELECT pg_temp.lbl(id) FROM autodoctor.orphaned_sessions');

-- What each role sees (labels, any order; '' = nothing) or 'error 42501' (no privilege).
CREATE TEMP TABLE sees (who text, rel name, seen text NOT NULL, PRIMARY KEY (who, rel));
INSERT INTO sees
SELECT w.who, r.rel, 'error 42501' FROM whos w CROSS JOIN rels r WHERE w.who = 'anon';
INSERT INTO sees VALUES
    -- profiles: one's own; the service every one
    ('alice', 'profiles', 'alice'), ('bob', 'profiles', 'bob'), ('mia', 'profiles', 'mia'),
    ('max', 'profiles', 'max'), ('nobody', 'profiles', ''),
    ('service', 'profiles', 'alice,bob,mia,max'),
    -- mechanics: a mechanic their own row; customers nothing
    ('alice', 'mechanics', ''), ('bob', 'mechanics', ''), ('mia', 'mechanics', 'mia'),
    ('max', 'mechanics', 'max'), ('nobody', 'mechanics', ''), ('service', 'mechanics', 'mia,max'),
    -- plans: active ones for signed-in users (premium is retired below); all for the service
    ('alice', 'plans', 'free,standard'), ('bob', 'plans', 'free,standard'),
    ('mia', 'plans', 'free,standard'), ('max', 'plans', 'free,standard'),
    ('nobody', 'plans', 'free,standard'), ('service', 'plans', 'free,premium,standard'),
    -- intakes: the customer's own
    ('alice', 'intakes', 'iA'), ('bob', 'intakes', 'iB'), ('mia', 'intakes', ''),
    ('max', 'intakes', ''), ('nobody', 'intakes', ''), ('service', 'intakes', 'iA,iB'),
    -- requests: customers their own (any status); a mechanic the ones they accepted and
    -- the pending, unexpired ones their expertise and radius cover
    ('alice', 'session_requests', 'rA_pend,rA_acc,rA_canc,rA_int'),
    ('bob', 'session_requests', 'rB_diag,rB_far,rB_exp,rB_acc'),
    ('mia', 'session_requests', 'rA_pend,rA_acc,rA_int,rB_diag'),
    ('max', 'session_requests', 'rA_pend,rA_int,rB_far,rB_acc'),
    ('nobody', 'session_requests', ''),
    ('service', 'session_requests', 'rA_pend,rA_acc,rA_canc,rA_int,rB_diag,rB_far,rB_exp,rB_acc'),
    -- sessions: its two parties (the legacy orphan oA has only its customer)
    ('alice', 'sessions', 'sA,oA'), ('bob', 'sessions', 'sB'), ('mia', 'sessions', 'sA'),
    ('max', 'sessions', 'sB'), ('nobody', 'sessions', ''), ('service', 'sessions', 'sA,sB,oA'),
    -- events: those of the requests and sessions one takes part in
    ('alice', 'session_events', 'new_request:rA_pend,new_request:rA_acc,request_accepted:rA_acc,'
        'new_request:rA_canc,request_cancelled:rA_canc,new_request:rA_int'),
    ('bob', 'session_events', 'new_request:rB_diag,new_request:rB_far,new_request:rB_exp,'
        'new_request:rB_acc,request_accepted:rB_acc'),
    ('mia', 'session_events', 'new_request:rA_acc,request_accepted:rA_acc'),
    ('max', 'session_events', 'new_request:rB_acc,request_accepted:rB_acc'),
    ('nobody', 'session_events', ''),
    ('service', 'session_events', 'new_request:rA_pend,new_request:rA_acc,request_accepted:rA_acc,'
        'new_request:rA_canc,request_cancelled:rA_canc,new_request:rA_int,new_request:rB_diag,'
        'new_request:rB_far,new_request:rB_exp,new_request:rB_acc,request_accepted:rB_acc'),
    -- the e-mail outbox: the service (worker) only; one row per eligible online mechanic
    ('alice', 'notification_outbox', 'error 42501'), ('bob', 'notification_outbox', 'error 42501'),
    ('mia', 'notification_outbox', 'error 42501'), ('max', 'notification_outbox', 'error 42501'),
    ('nobody', 'notification_outbox', 'error 42501'),
    ('service', 'notification_outbox',
        'new_request:rA_pend>mia,new_request:rA_pend>max,new_request:rA_acc>mia,new_request:rA_acc>max,'
        'new_request:rA_canc>mia,new_request:rA_canc>max,new_request:rA_int>mia,new_request:rA_int>max,'
        'new_request:rB_diag>mia,new_request:rB_far>max,new_request:rB_exp>mia,new_request:rB_exp>max,'
        'new_request:rB_acc>mia,new_request:rB_acc>max'),
    -- settings: the service only
    ('alice', 'settings', 'error 42501'), ('bob', 'settings', 'error 42501'),
    ('mia', 'settings', 'error 42501'), ('max', 'settings', 'error 42501'),
    ('nobody', 'settings', 'error 42501'), ('service', 'settings', 'settings'),
    -- relay_state (the NOTIFY relay's position): the service only
    ('alice', 'relay_state', 'error 42501'), ('bob', 'relay_state', 'error 42501'),
    ('mia', 'relay_state', 'error 42501'), ('max', 'relay_state', 'error 42501'),
    ('nobody', 'relay_state', 'error 42501'), ('service', 'relay_state', 'relay_state'),
    -- incoming_requests: what a mechanic may accept now; nothing for a customer
    ('alice', 'incoming_requests', ''), ('bob', 'incoming_requests', ''),
    ('mia', 'incoming_requests', 'rA_pend,rA_int,rB_diag'),
    ('max', 'incoming_requests', 'rA_pend,rA_int,rB_far'),
    ('nobody', 'incoming_requests', ''), ('service', 'incoming_requests', 'error 42501'),
    -- my_sessions: both sides' dashboard (authenticated only)
    ('alice', 'my_sessions', 'sA,oA'), ('bob', 'my_sessions', 'sB'), ('mia', 'my_sessions', 'sA'),
    ('max', 'my_sessions', 'sB'), ('nobody', 'my_sessions', ''), ('service', 'my_sessions', 'error 42501'),
    -- orphaned_sessions: the service's repair queue only
    ('alice', 'orphaned_sessions', 'error 42501'), ('bob', 'orphaned_sessions', 'error 42501'),
    ('mia', 'orphaned_sessions', 'error 42501'), ('max', 'orphaned_sessions', 'error 42501'),
    ('nobody', 'orphaned_sessions', 'error 42501'), ('service', 'orphaned_sessions', 'oA');

-- Who may execute each function of the schema (NULL: nobody; private helpers).
-- A function granted to two roles has a row for each (event_watermark: every follower).
CREATE TEMP TABLE grants (fn text NOT NULL, grantee name, UNIQUE (fn, grantee));
INSERT INTO grants VALUES
    ('create_session_request', 'authenticated'), ('submit_intake', 'authenticated'),
    ('cancel_session_request', 'authenticated'), ('accept_session_request', 'authenticated'),
    ('claim_orphaned_session', 'authenticated'), ('transition_session', 'authenticated'),
    ('set_mechanic_availability', 'authenticated'),
    ('register_mechanic', 'service_role'), ('expire_stale_requests', 'service_role'),
    ('convert_orphaned_sessions', 'service_role'), ('auto_assign_orphaned_sessions', 'service_role'),
    ('cancel_orphaned_sessions', 'service_role'), ('run_maintenance', 'service_role'),
    ('check_invariants', 'service_role'), ('claim_notifications', 'service_role'),
    ('complete_notification', 'service_role'), ('fan_out_new_requests', 'service_role'), ('relay_events', 'service_role'), ('event_watermark', 'service_role'), ('event_watermark', 'authenticated'),
    ('set_notify_mode', 'service_role'),
    -- The Realtime switches: for the owner (the role that deployed), no API role.
    ('enable_realtime', NULL), ('disable_realtime', NULL);

-- Partitions are reached through their parent (whose policies apply), so the matrix
-- covers the parent; that no role can read or write a partition directly is one
-- assertion of its own below.
CREATE TEMP VIEW catalog_rels AS
SELECT c.oid, c.relname AS rel, c.relkind
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'autodoctor' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition;
CREATE TEMP VIEW catalog_fns AS
SELECT p.oid, p.proname::text AS fn
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'autodoctor';
GRANT SELECT ON whos, rels, sees, grants, catalog_rels, catalog_fns TO PUBLIC;

SELECT plan(
      4                                                              -- coverage, partitions
    + (SELECT count(*)::int FROM whos) * (SELECT count(*)::int FROM rels) * 4  -- the matrix
    + (SELECT count(*)::int FROM rels)                               -- no write grants
    + (SELECT count(*)::int FROM catalog_fns) * 4                    -- EXECUTE grants
    + (SELECT count(DISTINCT fn)::int FROM grants WHERE grantee IS NOT NULL) * 4  -- calls per kind of caller
);
\ir helpers.psql

-- The label of a fixture id (NULL for anything this file did not create).
CREATE FUNCTION pg_temp.lbl(p_id uuid)
RETURNS text
LANGUAGE sql
STABLE
AS $$
    SELECT i.label FROM pg_temp.ids i WHERE i.id = p_id;
$$;

-- Become a kind of caller, as PostgREST would.
CREATE FUNCTION pg_temp.act_as(p_who text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    CASE p_who
        WHEN 'anon' THEN PERFORM pg_temp.login_anon();
        WHEN 'service' THEN PERFORM pg_temp.login_service();
        WHEN 'nobody' THEN PERFORM pg_temp.login_nobody();
        ELSE PERFORM pg_temp.login(p_who);
    END CASE;
END
$$;

-- The sorted labels a caller sees in a relation, or 'error SQLSTATE'.
CREATE FUNCTION pg_temp.seen(p_who text, p_rel name)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_sql text := (SELECT r.labels FROM pg_temp.rels r WHERE r.rel = p_rel);
    v_seen text;
BEGIN
    PERFORM pg_temp.act_as(p_who);
    BEGIN
        EXECUTE format('SELECT coalesce(string_agg(l, %L ORDER BY l), %L) FROM (%s) AS q(l) WHERE l IS NOT NULL',
                       ',', '', v_sql)
           INTO v_seen;
    EXCEPTION WHEN OTHERS THEN
        v_seen := 'error ' || SQLSTATE;
    END;
    PERFORM pg_temp.logout();
    RETURN v_seen;
END
$$;

-- A label list in canonical (sorted) order.
CREATE FUNCTION pg_temp.sorted(p_list text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE WHEN p_list LIKE 'error %' THEN p_list
                ELSE coalesce((SELECT string_agg(x, ',' ORDER BY x)
                                 FROM unnest(string_to_array(p_list, ',')) AS x WHERE x <> ''), '')
           END;
$$;

-- The SQLSTATE a statement fails with as a caller ('ok' if it succeeds; what it wrote is
-- undone by error_of's exception block either way).
CREATE FUNCTION pg_temp.attempt(p_who text, p_sql text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_result text;
BEGIN
    PERFORM pg_temp.act_as(p_who);
    v_result := pg_temp.error_of(p_sql);
    PERFORM pg_temp.logout();
    RETURN CASE WHEN v_result = 'no error' THEN 'ok' ELSE split_part(v_result, ':', 1) END;
END
$$;

-- 'SQLSTATE:DETAIL' of a statement run as a caller, or 'no error'. Whatever the
-- statement did is undone either way (a probe of run_maintenance must not repair
-- anything, nor keep rows of other sessions locked).
CREATE FUNCTION pg_temp.error_of_as(p_who text, p_sql text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_state text;
    v_detail text;
    v_result text;
BEGIN
    PERFORM pg_temp.act_as(p_who);
    BEGIN
        EXECUTE p_sql;
        RAISE EXCEPTION USING ERRCODE = 'XP001', MESSAGE = 'undo the probe';
    EXCEPTION
        WHEN SQLSTATE 'XP001' THEN
            v_result := 'no error';
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_detail = PG_EXCEPTION_DETAIL;
            v_result := v_state || ':' || coalesce(v_detail, '');
    END;
    PERFORM pg_temp.logout();
    RETURN v_result;
END
$$;

-- ---------------------------------------------------------------------------------------
-- Fixtures: two customers, two mechanics, eight requests in every state, two sessions
-- and one legacy orphan
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.new_user('alice', 'Alice Customer');
SELECT pg_temp.new_user('bob', 'Bob Customer');
-- mia: every type, located in Paris, 50 km; max: chat and video, no location.
SELECT pg_temp.new_mechanic('mia', p_latitude => 48.8566, p_longitude => 2.3522, p_radius_km => 50,
                            p_capacity => 5);
SELECT pg_temp.new_mechanic('max', ARRAY['chat', 'video']::autodoctor.session_type[], p_capacity => 5);
SELECT pg_temp.login('mia');
SELECT autodoctor.set_mechanic_availability(true) IS NOT NULL \g /dev/null
SELECT pg_temp.login('max');
SELECT autodoctor.set_mechanic_availability(true) IS NOT NULL \g /dev/null
SELECT pg_temp.logout();

SELECT pg_temp.new_request('rA_pend', 'alice', 'chat');
SELECT pg_temp.new_request('rA_acc', 'alice', 'video');
SELECT pg_temp.new_request('rA_canc', 'alice', 'chat');
-- The new-request e-mails are queued by the fan-out (the worker's claim), before the
-- requests change state.
SELECT autodoctor._fan_out_new_requests(100) AS fanned_out \g /dev/null
SELECT pg_temp.login('alice');
SELECT autodoctor.cancel_session_request(pg_temp.id('rA_canc')) IS NOT NULL \g /dev/null
SELECT pg_temp.remember('rA_int', (autodoctor.submit_intake('chat', 'free',
    '{"make": "Renault", "model": "Clio", "year": 2015}', 'Squeaky brakes', 48.86, 2.35)).id);
SELECT pg_temp.logout();
SELECT pg_temp.remember('iA', (SELECT intake_id FROM autodoctor.session_requests WHERE id = pg_temp.id('rA_int')));

SELECT pg_temp.new_request('rB_diag', 'bob', 'diagnostic');
SELECT pg_temp.login('bob');
SELECT pg_temp.remember('rB_far', (autodoctor.submit_intake('chat', 'free',
    '{"make": "Holden", "model": "Barina", "year": 2011}', 'Engine light', -33.8688, 151.2093)).id);
SELECT pg_temp.logout();
SELECT pg_temp.remember('iB', (SELECT intake_id FROM autodoctor.session_requests WHERE id = pg_temp.id('rB_far')));
SELECT pg_temp.new_request('rB_exp', 'bob', 'chat');
SELECT autodoctor._fan_out_new_requests(100) AS fanned_out \g /dev/null
UPDATE autodoctor.session_requests SET expires_at = now() - interval '1 minute'
 WHERE id = pg_temp.id('rB_exp');
SELECT pg_temp.new_request('rB_acc', 'bob', 'chat');
SELECT autodoctor._fan_out_new_requests(100) AS fanned_out \g /dev/null

SELECT pg_temp.login('mia');
SELECT pg_temp.remember('sA', (autodoctor.accept_session_request(pg_temp.id('rA_acc'))).id);
SELECT pg_temp.login('max');
SELECT pg_temp.remember('sB', (autodoctor.accept_session_request(pg_temp.id('rB_acc'))).id);
SELECT pg_temp.logout();

-- A legacy orphan written directly, as the old intake code path did.
SELECT pg_temp.remember('oA', gen_random_uuid());
INSERT INTO autodoctor.sessions (id, customer_user_id, plan, type, status)
VALUES (pg_temp.id('oA'), pg_temp.id('alice'), 'free', 'video', 'pending');
-- A retired plan.
UPDATE autodoctor.plans SET active = false WHERE code = 'premium';

-- ---------------------------------------------------------------------------------------
-- Coverage: the specification names every relation, function and (role, relation) pair
-- ---------------------------------------------------------------------------------------
SELECT set_eq(
    'SELECT rel::text FROM pg_temp.catalog_rels', 'SELECT rel::text FROM pg_temp.rels',
    'the matrix should cover every table and view of schema autodoctor, and nothing else');
SELECT is((SELECT count(*)::int FROM sees), (SELECT count(*)::int FROM whos) * (SELECT count(*)::int FROM rels),
    'every (role, relation) pair should have its SELECT expectation');
SELECT set_eq(
    'SELECT DISTINCT fn FROM pg_temp.catalog_fns WHERE fn NOT LIKE ''\_%''',
    'SELECT DISTINCT fn FROM pg_temp.grants',
    'the EXECUTE matrix should name every contract function (no leading underscore)');

SELECT is_empty(
    $$SELECT c.relname, r.role, p.priv
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN unnest(ARRAY['anon', 'authenticated', 'service_role', 'public']) AS r(role)
       CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(priv)
       WHERE n.nspname = 'autodoctor' AND c.relispartition AND c.relkind IN ('r', 'p')
         AND (NOT c.relrowsecurity OR has_table_privilege(r.role, c.oid, p.priv))$$,
    'no role should reach a partition directly (each has RLS on and no grant; its parent is the way in)');

-- ---------------------------------------------------------------------------------------
-- SELECT cells
-- ---------------------------------------------------------------------------------------
SELECT is(pg_temp.sorted(pg_temp.seen(s.who, s.rel)), pg_temp.sorted(s.seen),
          format('SELECT %s as %s should give %s', s.rel, s.who,
                 CASE WHEN s.seen LIKE 'error %' THEN s.seen
                      WHEN s.seen = '' THEN 'no row' ELSE '[' || pg_temp.sorted(s.seen) || ']' END))
  FROM sees s
 ORDER BY s.rel, s.who;

-- ---------------------------------------------------------------------------------------
-- INSERT / UPDATE / DELETE cells: refused for every role (only the owner writes, through
-- the functions). Views that PostgreSQL cannot write through refuse with 55000 before
-- privileges are even looked at; anon is refused at the schema (no USAGE).
-- ---------------------------------------------------------------------------------------
SELECT is(
    pg_temp.attempt(w.who, format(cmd.sql, c.rel,
        (SELECT quote_ident(a.attname) FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            AND a.attidentity = '' AND a.attgenerated = '' ORDER BY a.attnum LIMIT 1))),
    CASE WHEN w.who <> 'anon' AND c.relkind = 'v'
              AND (pg_catalog.pg_relation_is_updatable(c.oid, false) & cmd.bit) = 0 THEN '55000'
         ELSE '42501' END,
    format('%s on %s as %s should be refused', cmd.verb, c.rel, w.who))
  FROM catalog_rels c
 CROSS JOIN whos w
 CROSS JOIN (VALUES ('INSERT', 'INSERT INTO autodoctor.%I DEFAULT VALUES', 8),
                    ('UPDATE', 'UPDATE autodoctor.%I SET %2$s = %2$s', 4),
                    ('DELETE', 'DELETE FROM autodoctor.%I', 16)) AS cmd(verb, sql, bit)
 ORDER BY c.rel, cmd.verb, w.who;

SELECT is_empty(
    format($$SELECT r.role, p.priv
               FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'public']) AS r(role)
              CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p(priv)
              WHERE has_table_privilege(r.role, %s::oid, p.priv)
                 OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                             WHERE a.attrelid = %1$s::oid AND a.attnum > 0 AND NOT a.attisdropped
                               AND p.priv IN ('INSERT', 'UPDATE', 'REFERENCES')
                               AND has_column_privilege(r.role, %1$s::oid, a.attnum, p.priv))$$, c.oid),
    format('no role should hold a write grant (table or column) on %s', c.rel))
  FROM catalog_rels c
 ORDER BY c.rel;

-- ---------------------------------------------------------------------------------------
-- EXECUTE grants of every function, per role (overloads included)
-- ---------------------------------------------------------------------------------------
SELECT is(
    has_function_privilege(r.role, f.oid, 'EXECUTE'),
    g.granted,
    format('%s should %s execute %s', r.role,
           CASE WHEN g.granted THEN 'be able to' ELSE 'not be able to' END,
           f.oid::regprocedure))
  FROM catalog_fns f
 CROSS JOIN unnest(ARRAY['anon', 'authenticated', 'service_role', 'public']::name[]) AS r(role)
 CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM grants g
                                     WHERE g.fn = f.fn AND g.grantee = r.role) AS granted) g
 ORDER BY f.fn, r.role;

-- What calling each contract function gives each kind of caller: permission denied
-- ('42501' with no reason: refused before any of the package's code runs) unless the
-- function is granted to the caller's role. The call's own outcome is the function
-- files' business; here only "does the grant let it in" is asserted.
CREATE TEMP TABLE probe AS
SELECT g.fn, g.grantees,
       format('SELECT autodoctor.%I(%s)', g.fn,
              (SELECT string_agg(format('NULL::%s', format_type(t, NULL)), ', ' ORDER BY o)
                 FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, o))) AS sql
  FROM (SELECT fn, array_agg(grantee) AS grantees FROM grants
         WHERE grantee IS NOT NULL GROUP BY fn) g
  JOIN catalog_fns f ON f.fn = g.fn
  JOIN pg_catalog.pg_proc p ON p.oid = f.oid;
GRANT SELECT ON probe TO PUBLIC;

SELECT ok(
    CASE WHEN w.role = ANY (p.grantees) THEN pg_temp.error_of_as(w.who, p.sql) <> '42501:'
         ELSE pg_temp.error_of_as(w.who, p.sql) = '42501:' END,
    format('%s as %s should be %s', p.fn, w.who,
           CASE WHEN w.role = ANY (p.grantees) THEN 'let in (the function itself answers)'
                ELSE 'refused with 42501 permission denied' END))
  FROM probe p
 CROSS JOIN (VALUES ('anon', 'anon'::name), ('alice', 'authenticated'), ('mia', 'authenticated'),
                    ('service', 'service_role')) AS w(who, role)
 ORDER BY p.fn, w.who;

SELECT * FROM finish();
ROLLBACK;

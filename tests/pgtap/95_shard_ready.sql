-- The schema is shard-ready where it costs nothing now (docs/SCALING.md): the hot tables
-- carry the distribution key `market`, and an accept never crosses markets.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap SCHEMA extensions;
SET LOCAL search_path = extensions, public;
SELECT plan(15);

SELECT has_column('autodoctor', t, 'market', t || ' should carry the distribution key market')
  FROM unnest(ARRAY['mechanics', 'session_requests', 'sessions']) AS t;
SELECT col_not_null('autodoctor', t, 'market', t || '.market should be NOT NULL')
  FROM unnest(ARRAY['mechanics', 'session_requests', 'sessions']) AS t;
SELECT col_default_is('autodoctor', t, 'market', 'default'::text, t || '.market should default to ''default''')
  FROM unnest(ARRAY['mechanics', 'session_requests', 'sessions']) AS t;

-- Citus requires every unique index of a distributed table to contain the distribution
-- column. Every unique index of the hot tables does, except four keys kept on purpose
-- (docs/SCALING.md, "Constraints and indexes that must include the key"): the primary keys
-- that foreign keys point at, sessions.request_id (docs/design.md: unique, one session per
-- request) and mechanics.user_id (a mechanic works in one market). A new unique index must
-- include market, or be added here with its reason.
SELECT is(
    ARRAY(SELECT i.indexrelid::regclass::text
            FROM pg_index i
           WHERE i.indrelid IN ('autodoctor.mechanics'::regclass, 'autodoctor.session_requests'::regclass,
                                'autodoctor.sessions'::regclass)
             AND i.indisunique
             AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                              WHERE a.attrelid = i.indrelid AND a.attname = 'market'
                                AND a.attnum = ANY (i.indkey))
           ORDER BY 1),
    ARRAY['autodoctor.mechanics_pkey', 'autodoctor.session_requests_pkey', 'autodoctor.sessions_pkey',
          'autodoctor.sessions_request_id_key'],
    'every unique index of the hot tables should include market, but the four documented keys');

-- Behaviour: a mechanic of another market neither sees nor accepts the request; one of the
-- same market does, and the session inherits the request's market.
INSERT INTO auth.users (id, email) VALUES
    ('00000000-0000-0000-0000-00000000c001', 'c@shard.test'),
    ('00000000-0000-0000-0000-00000000a001', 'a@shard.test'),
    ('00000000-0000-0000-0000-00000000a002', 'b@shard.test');
SET LOCAL ROLE service_role;
SELECT autodoctor.register_mechanic('00000000-0000-0000-0000-00000000a001');
SELECT autodoctor.register_mechanic('00000000-0000-0000-0000-00000000a002');
RESET ROLE;
UPDATE autodoctor.mechanics SET market = 'lyon' WHERE user_id = '00000000-0000-0000-0000-00000000a002';
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-0000-0000-00000000c001"}', true);
CREATE TEMP TABLE shard_req ON COMMIT DROP AS
    SELECT id FROM autodoctor.create_session_request('chat', 'free');
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-0000-0000-00000000a002"}', true);
SELECT is((SELECT count(*) FROM autodoctor.incoming_requests)::int, 0,
          'a mechanic of another market should not see the request');
SELECT throws_ok(
    format('SELECT autodoctor.accept_session_request(%L)', (SELECT id FROM shard_req)),
    '42501', NULL, 'a mechanic of another market should not accept the request');
SELECT set_config('request.jwt.claims', '{"sub":"00000000-0000-0000-0000-00000000a001"}', true);
SELECT is((SELECT count(*) FROM autodoctor.incoming_requests)::int, 1,
          'a mechanic of the same market should see the request');
SELECT is((SELECT market FROM autodoctor.accept_session_request((SELECT id FROM shard_req))),
          'default', 'the session should inherit the request''s market');
RESET ROLE;
SELECT is((SELECT count(*) FROM autodoctor.sessions s JOIN autodoctor.session_requests r
             ON r.id = s.request_id WHERE s.market <> r.market)::int, 0,
          'no session should live in another market than its request');

SELECT * FROM finish();
ROLLBACK;

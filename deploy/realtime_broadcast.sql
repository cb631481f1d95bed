-- Deploy autodoctor:realtime_broadcast to pg
-- requires: session_events
-- requires: sessions
-- requires: mechanics
-- requires: user_erasure

BEGIN;

-- Supabase Realtime "Broadcast from Database": where Realtime's schema exists (it has
-- realtime.messages, realtime.send and realtime.topic()), every event logged in
-- session_events is also sent, in the event's own transaction, to private topics:
--
--   autodoctor:user:<uuid>     each party of the event (the customer; the mechanic, if any)
--   autodoctor:market:<market> the request's market, for new_request, request_accepted,
--                              request_cancelled and request_expired
--
-- with the ids-only payload of the NOTIFY (never names, e-mails, notes or vehicles).
-- Realtime reads those rows from the WAL and delivers them to the clients joined to the
-- topic, after checking each joiner against the SELECT policies on realtime.messages, with
-- realtime.topic set to the topic and the role and JWT claims of the user.
--
-- Nothing here needs Realtime: enable_realtime() installs the trigger and the policies when
-- the schema is there, says so and does nothing when it is not, and may be run again (for
-- a Realtime schema created after this deploy). disable_realtime() removes them.

-- enable_realtime: installs the broadcast trigger and the policies, where Realtime's
-- schema is; idempotent. The trigger function is created here rather than above because
-- it names realtime.send, which exists only where Realtime does.
CREATE OR REPLACE FUNCTION autodoctor.enable_realtime()
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $enable$
DECLARE
    -- Without USAGE on schema realtime even looking its objects up fails: ask that first.
    v_usage CONSTANT boolean := pg_catalog.to_regnamespace('realtime') IS NULL
                                OR pg_catalog.has_schema_privilege('realtime', 'USAGE');
BEGIN
    IF v_usage AND (pg_catalog.to_regclass('realtime.messages') IS NULL
                    OR pg_catalog.to_regprocedure('realtime.send(jsonb, text, text, boolean)') IS NULL
                    OR pg_catalog.to_regprocedure('realtime.topic()') IS NULL) THEN
        RAISE NOTICE USING
            MESSAGE = 'autodoctor: no Supabase Realtime schema in this database '
                      '(realtime.messages, realtime.send, realtime.topic()): events are '
                      'announced with NOTIFY only',
            HINT = 'Once Realtime has created its schema, run SELECT autodoctor.enable_realtime();';
        RETURN false;
    END IF;
    -- The trigger runs as this function's owner: if that role could not call
    -- realtime.send, every event, and so every change, would fail. Refuse now instead.
    IF NOT v_usage
       OR NOT pg_catalog.has_function_privilege('realtime.send(jsonb, text, text, boolean)', 'EXECUTE') THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = pg_catalog.format('role %s may not call realtime.send', current_user),
            DETAIL = 'realtime_not_permitted',
            HINT = 'Grant it USAGE on schema realtime and EXECUTE on realtime.send, or '
                   'deploy as a role that has them (postgres on Supabase).';
    END IF;

    -- Start from nothing of ours (quietly), so that a re-run also removes a stale piece.
    PERFORM autodoctor.disable_realtime();

    EXECUTE $fn$
    CREATE FUNCTION autodoctor._broadcast_event()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = ''
    AS $body$
    DECLARE
        v_payload jsonb;
        v_customer uuid;
        v_mechanic uuid;
        v_market text;
        v_session_customer uuid;
        v_session_mechanic uuid;
    BEGIN
        -- Realtime's schema dropped without disable_realtime(): announce with NOTIFY only,
        -- rather than fail the change that logged the event.
        IF pg_catalog.to_regprocedure('realtime.send(jsonb, text, text, boolean)') IS NULL THEN
            RETURN NULL;
        END IF;
        IF NEW.request_id IS NOT NULL THEN
            SELECT r.customer_id, r.mechanic_id, r.market
              INTO v_customer, v_mechanic, v_market
              FROM autodoctor.session_requests r
             WHERE r.id = NEW.request_id;
        END IF;
        IF NEW.session_id IS NOT NULL THEN
            SELECT s.customer_user_id, s.mechanic_id
              INTO v_session_customer, v_session_mechanic
              FROM autodoctor.sessions s
             WHERE s.id = NEW.session_id;
            v_customer := coalesce(v_session_customer, v_customer);
            v_mechanic := coalesce(v_session_mechanic, v_mechanic);
        END IF;
        -- The NOTIFY payload (session_events._notify_event): ids and non-private fields.
        -- realtime.send adds the message's own id.
        v_payload := pg_catalog.jsonb_build_object(
            'event_id', NEW.id,
            'event', NEW.event,
            'request_id', NEW.request_id,
            'session_id', NEW.session_id,
            'session_type', NEW.session_type,
            'plan_code', NEW.plan_code,
            'at', NEW.at);
        -- realtime.send never raises: it catches its own errors and logs a WARNING.
        IF v_customer IS NOT NULL THEN
            PERFORM realtime.send(v_payload, NEW.event, 'autodoctor:user:' || v_customer::text, true);
        END IF;
        IF v_mechanic IS NOT NULL AND v_mechanic IS DISTINCT FROM v_customer THEN
            PERFORM realtime.send(v_payload, NEW.event, 'autodoctor:user:' || v_mechanic::text, true);
        END IF;
        IF v_market IS NOT NULL
           AND NEW.event IN ('new_request', 'request_accepted', 'request_cancelled', 'request_expired') THEN
            PERFORM realtime.send(v_payload, NEW.event, 'autodoctor:market:' || v_market, true);
        END IF;
        RETURN NULL;
    END
    $body$
    $fn$;
    COMMENT ON FUNCTION autodoctor._broadcast_event() IS
        'Private trigger (installed by enable_realtime): sends a new event with realtime.send '
        'to autodoctor:user:<id> of each party and, for request events, autodoctor:market:<market>.';
    REVOKE ALL ON FUNCTION autodoctor._broadcast_event() FROM PUBLIC;

    CREATE TRIGGER session_events_broadcast
        AFTER INSERT ON autodoctor.session_events
        FOR EACH ROW EXECUTE FUNCTION autodoctor._broadcast_event();

    -- The policies touch only topics that start with autodoctor:. They let the right
    -- users read (join) them; restrictive ones keep everybody else out, whatever
    -- other permissive policies the project has (Supabase's examples grant authenticated
    -- every topic), and keep clients from sending on them: only the package broadcasts there.
    -- Who may join: a user their own user topic (autodoctor:user:<uid>, the id in lower
    -- case, as uuid's text form); an active mechanic their market's topic
    -- (autodoctor:market:<market>), by one probe of their own mechanics row (which
    -- row-level security lets them read); nobody anything else under the prefix. The
    -- permissive policy opens the joined topic's broadcasts; the restrictive one applies
    -- to every read by authenticated, so no other policy of the project opens them wider.
    CREATE POLICY autodoctor_join ON realtime.messages
        AS PERMISSIVE FOR SELECT TO authenticated
        USING (extension = 'broadcast'
               AND pg_catalog.starts_with(topic, 'autodoctor:')
               AND topic = (SELECT realtime.topic()));
    CREATE POLICY autodoctor_join_only ON realtime.messages
        AS RESTRICTIVE FOR SELECT TO authenticated
        USING (NOT pg_catalog.starts_with(topic, 'autodoctor:')
               OR (topic = (SELECT realtime.topic())
                   AND CASE
                       WHEN pg_catalog.starts_with(topic, 'autodoctor:user:')
                           THEN pg_catalog.substr(topic, 17) = (SELECT auth.uid())::text
                       WHEN pg_catalog.starts_with(topic, 'autodoctor:market:')
                           THEN EXISTS (SELECT 1 FROM autodoctor.mechanics m
                                         WHERE m.user_id = (SELECT auth.uid())
                                           AND m.active
                                           AND m.market = pg_catalog.substr((SELECT realtime.topic()), 19))
                       ELSE false
                   END));
    CREATE POLICY autodoctor_no_anon ON realtime.messages
        AS RESTRICTIVE FOR SELECT TO anon
        USING (NOT pg_catalog.starts_with(topic, 'autodoctor:'));
    CREATE POLICY autodoctor_no_client_insert ON realtime.messages
        AS RESTRICTIVE FOR INSERT TO anon, authenticated
        WITH CHECK (NOT pg_catalog.starts_with(topic, 'autodoctor:'));
    CREATE POLICY autodoctor_no_client_update ON realtime.messages
        AS RESTRICTIVE FOR UPDATE TO anon, authenticated
        USING (NOT pg_catalog.starts_with(topic, 'autodoctor:'))
        WITH CHECK (NOT pg_catalog.starts_with(topic, 'autodoctor:'));
    -- The trigger's role writes through row-level security unless it bypasses it
    -- (superusers, and postgres on Supabase, do): then it needs a policy of its own.
    IF NOT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        EXECUTE pg_catalog.format(
            'CREATE POLICY autodoctor_broadcast ON realtime.messages AS PERMISSIVE FOR INSERT TO %I '
            'WITH CHECK (extension = %L AND pg_catalog.starts_with(topic, %L))',
            current_user, 'broadcast', 'autodoctor:');
    END IF;
    RETURN true;
END
$enable$;

COMMENT ON FUNCTION autodoctor.enable_realtime() IS
    'Where Supabase Realtime''s schema exists: broadcasts every new event with realtime.send '
    'to private topics and creates the join policies on realtime.messages; returns true. '
    'Elsewhere: a NOTICE, nothing changed, false. Idempotent: run it again after Realtime '
    'creates its schema. For the role that deployed the package.';
REVOKE ALL ON FUNCTION autodoctor.enable_realtime() FROM PUBLIC;

-- disable_realtime: removes what enable_realtime installed (nothing else of Realtime's).
CREATE OR REPLACE FUNCTION autodoctor.disable_realtime()
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $disable$
DECLARE
    v_had boolean := pg_catalog.to_regprocedure('autodoctor._broadcast_event()') IS NOT NULL;
    v_policy name;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                WHERE tgrelid = 'autodoctor.session_events'::regclass
                  AND tgname = 'session_events_broadcast' AND tgparentid = 0) THEN
        DROP TRIGGER session_events_broadcast ON autodoctor.session_events;
    END IF;
    IF v_had THEN
        DROP FUNCTION autodoctor._broadcast_event();
    END IF;
    FOR v_policy IN
        SELECT p.polname FROM pg_catalog.pg_policy p
         WHERE p.polrelid = pg_catalog.to_regclass('realtime.messages')
           AND p.polname = ANY (ARRAY['autodoctor_join', 'autodoctor_join_only', 'autodoctor_no_anon',
                                      'autodoctor_no_client_insert', 'autodoctor_no_client_update',
                                      'autodoctor_broadcast'])
    LOOP
        EXECUTE pg_catalog.format('DROP POLICY %I ON realtime.messages', v_policy);
    END LOOP;
    RETURN v_had;
END
$disable$;

COMMENT ON FUNCTION autodoctor.disable_realtime() IS
    'Stops the Realtime broadcasts: drops the trigger and the policies enable_realtime() '
    'created, and nothing else of Realtime''s. Returns whether they were installed. NOTIFY '
    'is unaffected. For the role that deployed the package.';
REVOKE ALL ON FUNCTION autodoctor.disable_realtime() FROM PUBLIC;

-- Where Realtime is already there, broadcast from now on.
SELECT autodoctor.enable_realtime();

COMMIT;

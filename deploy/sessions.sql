-- Deploy autodoctor:sessions to pg
-- requires: session_requests

BEGIN;

CREATE TABLE autodoctor.sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    mechanic_id uuid REFERENCES autodoctor.profiles (id),
    customer_user_id uuid REFERENCES auth.users (id) ON DELETE CASCADE,
    customer_email text,
    plan text NOT NULL,
    type autodoctor.session_type NOT NULL,
    status autodoctor.session_status NOT NULL DEFAULT 'pending',
    stripe_session_id text,
    intake_id uuid REFERENCES autodoctor.intakes (id) ON DELETE SET NULL,
    scheduled_start timestamptz,
    scheduled_end timestamptz,
    scheduled_for timestamptz,
    started_at timestamptz,
    ended_at timestamptz,
    duration_minutes integer,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- One session per request: the request that created or assigned this session.
    request_id uuid UNIQUE REFERENCES autodoctor.session_requests (id),
    cancel_reason text,
    -- The market (region) the row belongs to: the future distribution key (docs/SCALING.md).
    market text NOT NULL DEFAULT 'default' CHECK (market ~ '^[a-z0-9_-]{1,40}$'),
    -- A payment pays for one session; the key ends with market, as Citus requires.
    CONSTRAINT sessions_stripe_session_id_key UNIQUE (stripe_session_id, market)
);

COMMENT ON TABLE autodoctor.sessions IS
    'A diagnostic session between a customer and a mechanic. Born only from an accepted '
    'request (or, for legacy rows, repaired by the orphan operations); status follows '
    'the session state machine.';

-- The request's pointer to its session; deferred, because accept writes the request
-- first and then the session it points at, in the same transaction.
ALTER TABLE autodoctor.session_requests
    ADD CONSTRAINT session_requests_session_id_fkey
    FOREIGN KEY (session_id) REFERENCES autodoctor.sessions (id)
    DEFERRABLE INITIALLY DEFERRED;

CREATE INDEX sessions_mechanic_id_idx ON autodoctor.sessions (mechanic_id);
CREATE INDEX sessions_customer_user_id_idx ON autodoctor.sessions (customer_user_id);
CREATE INDEX sessions_intake_id_idx ON autodoctor.sessions (intake_id) WHERE intake_id IS NOT NULL;
-- A mechanic's load (capacity check, least-loaded dispatch) and the orphan queue.
CREATE INDEX sessions_active_load_idx ON autodoctor.sessions (mechanic_id)
    WHERE status IN ('scheduled', 'waiting', 'live');
CREATE INDEX sessions_orphans_idx ON autodoctor.sessions (created_at)
    WHERE mechanic_id IS NULL AND status IN ('pending', 'live');

ALTER TABLE autodoctor.sessions ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON autodoctor.sessions TO authenticated, service_role;

CREATE POLICY sessions_select_authenticated ON autodoctor.sessions
    FOR SELECT TO authenticated
    USING (customer_user_id = (SELECT auth.uid()) OR mechanic_id = (SELECT auth.uid()));
COMMENT ON POLICY sessions_select_authenticated ON autodoctor.sessions IS
    'Customers and mechanics read the sessions they take part in.';

CREATE POLICY sessions_select_service ON autodoctor.sessions
    FOR SELECT TO service_role USING (true);
COMMENT ON POLICY sessions_select_service ON autodoctor.sessions IS
    'The service role reads every session.';

COMMIT;

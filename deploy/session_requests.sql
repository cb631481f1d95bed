-- Deploy autodoctor:session_requests to pg
-- requires: plans
-- requires: intakes
-- requires: mechanics
-- requires: settings

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

CREATE TABLE autodoctor.session_requests (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    customer_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    mechanic_id uuid REFERENCES auth.users (id) ON DELETE SET NULL,
    session_type autodoctor.session_type NOT NULL,
    plan_code text NOT NULL REFERENCES autodoctor.plans (code),
    status autodoctor.session_request_status NOT NULL DEFAULT 'pending',
    customer_name text,
    customer_email text,
    notes text CHECK (char_length(notes) <= 2000),
    accepted_at timestamptz,
    notification_sent_at timestamptz,
    metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    intake_id uuid REFERENCES autodoctor.intakes (id) ON DELETE SET NULL,
    expires_at timestamptz NOT NULL DEFAULT (now() + autodoctor._request_ttl()),
    -- The session this request produced, or (for a converted legacy orphan) the session
    -- it will assign; the foreign key is added with autodoctor.sessions.
    session_id uuid,
    idempotency_key text CHECK (char_length(idempotency_key) BETWEEN 1 AND 200),
    location geography(Point, 4326),
    -- The market (region) the row belongs to: the future distribution key (docs/SCALING.md).
    market text NOT NULL DEFAULT 'default' CHECK (market ~ '^[a-z0-9_-]{1,40}$'),
    cancelled_at timestamptz,
    expired_at timestamptz
);

COMMENT ON TABLE autodoctor.session_requests IS
    'A customer''s request for a session: pending until one mechanic accepts it '
    '(creating or assigning its session in the same transaction), the customer cancels '
    'it, or it expires at expires_at. Written only through the package''s functions.';

-- Policies filter on customer_id and mechanic_id; every foreign key has an index.
CREATE INDEX session_requests_customer_id_idx
    ON autodoctor.session_requests (customer_id, created_at DESC);
CREATE INDEX session_requests_mechanic_id_idx
    ON autodoctor.session_requests (mechanic_id) WHERE mechanic_id IS NOT NULL;
CREATE INDEX session_requests_plan_code_idx ON autodoctor.session_requests (plan_code);
CREATE INDEX session_requests_intake_id_idx
    ON autodoctor.session_requests (intake_id) WHERE intake_id IS NOT NULL;
CREATE INDEX session_requests_session_id_idx
    ON autodoctor.session_requests (session_id) WHERE session_id IS NOT NULL;
-- The pending queue, oldest first, and the expiry sweep: partial, so they stay small
-- however many closed requests accumulate.
CREATE INDEX session_requests_pending_idx
    ON autodoctor.session_requests (created_at) WHERE status = 'pending';
CREATE INDEX session_requests_pending_expiry_idx
    ON autodoctor.session_requests (expires_at) WHERE status = 'pending';
-- Idempotency: one request per (customer, key); one pending request per legacy session.
-- Both end with the distribution key, market, as Citus requires of a distributed table's
-- unique indexes (docs/SCALING.md): a request's market is its session's, and create and
-- submit_intake give a customer's retries the same market, so neither means less for it.
CREATE UNIQUE INDEX session_requests_idempotency_key_idx
    ON autodoctor.session_requests (customer_id, idempotency_key, market)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX session_requests_one_pending_per_session_idx
    ON autodoctor.session_requests (session_id, market)
    WHERE status = 'pending' AND session_id IS NOT NULL;

ALTER TABLE autodoctor.session_requests ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON autodoctor.session_requests TO service_role;
-- Signed-in users read every column but the customer's e-mail: an eligible mechanic sees a
-- pending request before accepting it, and the e-mail is not theirs to see (the customer
-- gets it back from the functions, which return the whole row).
GRANT SELECT (id, created_at, updated_at, customer_id, mechanic_id, session_type, plan_code,
              status, customer_name, notes, accepted_at, notification_sent_at, metadata,
              intake_id, expires_at, session_id, idempotency_key, location, cancelled_at,
              expired_at, market)
    ON autodoctor.session_requests TO authenticated;

-- A mechanic sees the pending, unexpired requests they could accept: active, expertise
-- covering the type, same market, and within their service radius where both sides have a
-- location. The caller's mechanic row is read by uncorrelated subqueries, which PostgreSQL
-- evaluates once per statement (initplans) instead of once per row.
CREATE POLICY session_requests_select_authenticated ON autodoctor.session_requests
    FOR SELECT TO authenticated
    USING (
        customer_id = (SELECT auth.uid())
        OR mechanic_id = (SELECT auth.uid())
        OR (
            status = 'pending'
            AND expires_at > now()
            AND market = (SELECT m.market FROM autodoctor.mechanics m
                           WHERE m.user_id = (SELECT auth.uid()) AND m.active)
            AND session_type = ANY (coalesce((SELECT m.expertise FROM autodoctor.mechanics m
                                               WHERE m.user_id = (SELECT auth.uid()) AND m.active),
                                              '{}'))
            AND (location IS NULL
                 OR (SELECT m.location FROM autodoctor.mechanics m
                      WHERE m.user_id = (SELECT auth.uid())) IS NULL
                 OR st_dwithin(
                        location,
                        (SELECT m.location FROM autodoctor.mechanics m
                          WHERE m.user_id = (SELECT auth.uid())),
                        (SELECT (m.service_radius_km * 1000)::double precision
                           FROM autodoctor.mechanics m WHERE m.user_id = (SELECT auth.uid()))))
        )
    );
COMMENT ON POLICY session_requests_select_authenticated ON autodoctor.session_requests IS
    'Customers read their own requests; mechanics the ones they accepted and the pending '
    'ones they are eligible to accept.';

CREATE POLICY session_requests_select_service ON autodoctor.session_requests
    FOR SELECT TO service_role USING (true);
COMMENT ON POLICY session_requests_select_service ON autodoctor.session_requests IS
    'The service role reads every request.';

COMMIT;

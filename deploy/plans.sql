-- Deploy autodoctor:plans to pg
-- requires: enums

BEGIN;

CREATE TABLE autodoctor.plans (
    code text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{0,39}$'),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    allowed_types autodoctor.session_type[] NOT NULL
        CHECK (cardinality(allowed_types) > 0 AND array_position(allowed_types, NULL) IS NULL),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE autodoctor.plans IS
    'Catalogue of plan codes and the session types each allows.';

INSERT INTO autodoctor.plans (code, name, allowed_types) VALUES
    ('free', 'Free', enum_range(NULL::autodoctor.session_type)),
    ('standard', 'Standard', ARRAY['chat', 'video']::autodoctor.session_type[]),
    ('premium', 'Premium', enum_range(NULL::autodoctor.session_type));

ALTER TABLE autodoctor.plans ENABLE ROW LEVEL SECURITY;
GRANT SELECT ON autodoctor.plans TO authenticated, service_role;

CREATE POLICY plans_select_authenticated ON autodoctor.plans
    FOR SELECT TO authenticated USING (active);
COMMENT ON POLICY plans_select_authenticated ON autodoctor.plans IS
    'Signed-in users read the active plans.';

CREATE POLICY plans_select_service ON autodoctor.plans
    FOR SELECT TO service_role USING (true);
COMMENT ON POLICY plans_select_service ON autodoctor.plans IS
    'The service role reads every plan.';

-- _require_plan: checks that a plan exists, is active and allows a session type.
-- Raises 22023 (unknown_plan, plan_forbids_type): bad input, nothing written.
CREATE OR REPLACE FUNCTION autodoctor._require_plan(
    session_type autodoctor.session_type,
    plan_code text
)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = ''
AS $$
DECLARE
    v_allowed autodoctor.session_type[];
BEGIN
    IF session_type IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'session type is required',
            DETAIL = 'invalid_session_type',
            HINT = 'Use one of: chat, video, diagnostic.';
    END IF;
    SELECT p.allowed_types INTO v_allowed
      FROM autodoctor.plans p
     WHERE p.code = _require_plan.plan_code AND p.active;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('unknown plan %L', left(plan_code, 60)),
            DETAIL = 'unknown_plan',
            HINT = 'Use the code of an active plan in autodoctor.plans, such as free.';
    END IF;
    IF NOT (session_type = ANY (v_allowed)) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('plan %s does not allow %s sessions', plan_code, session_type),
            DETAIL = 'plan_forbids_type',
            HINT = format('This plan allows: %s.', array_to_string(v_allowed, ', '));
    END IF;
END
$$;

COMMENT ON FUNCTION autodoctor._require_plan(autodoctor.session_type, text) IS
    'Private: 22023 unless the plan exists, is active and allows the session type.';
REVOKE ALL ON FUNCTION autodoctor._require_plan(autodoctor.session_type, text) FROM PUBLIC;

COMMIT;

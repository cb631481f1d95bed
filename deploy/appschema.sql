-- Deploy autodoctor:appschema to pg
-- requires: auth_shim

BEGIN;

CREATE SCHEMA autodoctor;

COMMENT ON SCHEMA autodoctor IS
    'autodoctor-db: the session-request lifecycle of an on-demand mechanic marketplace.';

-- anon gets nothing; authenticated and service_role reach the schema. Every function
-- revokes EXECUTE from PUBLIC where it is created (per-schema default privileges cannot
-- take back the global PUBLIC grant) and is granted to the one role that needs it.
GRANT USAGE ON SCHEMA autodoctor TO authenticated, service_role;

COMMIT;

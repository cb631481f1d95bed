-- Deploy autodoctor:enums to pg
-- requires: appschema

BEGIN;

CREATE TYPE autodoctor.session_type AS ENUM ('chat', 'video', 'diagnostic');
COMMENT ON TYPE autodoctor.session_type IS 'Kind of diagnostic session a customer asks for.';

CREATE TYPE autodoctor.session_status AS ENUM (
    'pending', 'scheduled', 'waiting', 'live', 'completed', 'cancelled'
);
COMMENT ON TYPE autodoctor.session_status IS
    'Session state; transitions are governed by the session state machine.';

CREATE TYPE autodoctor.session_request_status AS ENUM ('pending', 'accepted', 'cancelled', 'expired');
COMMENT ON TYPE autodoctor.session_request_status IS
    'Request state: pending until accepted, cancelled by its customer, or expired.';

COMMIT;

-- Revert autodoctor:enums from pg

BEGIN;

DROP TYPE autodoctor.session_request_status;
DROP TYPE autodoctor.session_status;
DROP TYPE autodoctor.session_type;

COMMIT;

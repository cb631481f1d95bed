-- Revert autodoctor:session_requests from pg

BEGIN;

DROP TABLE autodoctor.session_requests;

COMMIT;

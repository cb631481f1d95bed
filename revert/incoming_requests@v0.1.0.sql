-- Revert autodoctor:incoming_requests from pg

BEGIN;

DROP VIEW autodoctor.incoming_requests;

COMMIT;

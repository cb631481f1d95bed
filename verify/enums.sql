-- Verify autodoctor:enums on pg

BEGIN;

SELECT 'chat'::autodoctor.session_type,
       'live'::autodoctor.session_status,
       'expired'::autodoctor.session_request_status;

ROLLBACK;

-- Revert autodoctor:notification_outbox from pg

BEGIN;

-- Back to the v0.1.0 fan-out (the table belongs to the released change).
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

-- _queue_new_request_emails: queues the "new request" e-mail to eligible online mechanics.
-- Eligible as for accepting (active, expertise, service radius where both sides are
-- located), online, not the customer; nearest then least loaded first, at most
-- settings.new_request_email_limit of them.
CREATE OR REPLACE FUNCTION autodoctor._queue_new_request_emails(
    request_id uuid
)
RETURNS integer
LANGUAGE sql
VOLATILE
SET search_path = ''
-- A SQL-standard body: PostGIS's st_dwithin and st_distance are bound at deploy (above).
BEGIN ATOMIC
    WITH queued AS (
        INSERT INTO autodoctor.notification_outbox (kind, mechanic_id, recipient, request_id)
        SELECT 'new_request', m.user_id, u.email, r.id
          FROM autodoctor.session_requests r
          JOIN autodoctor.mechanics m
            ON m.active AND m.online
           AND m.market = r.market
           AND r.session_type = ANY (m.expertise)
           AND m.user_id <> r.customer_id
           AND (r.location IS NULL OR m.location IS NULL
                OR st_dwithin(r.location, m.location, (m.service_radius_km * 1000)::double precision))
          JOIN auth.users u ON u.id = m.user_id
         WHERE r.id = _queue_new_request_emails.request_id
         ORDER BY CASE WHEN r.location IS NULL OR m.location IS NULL THEN NULL
                       ELSE st_distance(r.location, m.location) END NULLS LAST,
                  m.active_sessions
         LIMIT (SELECT s.new_request_email_limit FROM autodoctor.settings s WHERE s.id)
        RETURNING 1
    ), marked AS (
        UPDATE autodoctor.session_requests r
           SET notification_sent_at = now()
         WHERE r.id = _queue_new_request_emails.request_id
           AND EXISTS (SELECT FROM queued)
        RETURNING 1
    )
    SELECT count(*)::integer FROM queued;
END;

COMMENT ON FUNCTION autodoctor._queue_new_request_emails(uuid) IS
    'Private: queues new_request e-mails to the eligible online mechanics of a request.';
REVOKE ALL ON FUNCTION autodoctor._queue_new_request_emails(uuid) FROM PUBLIC;

COMMIT;

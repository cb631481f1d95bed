-- Deploy autodoctor:convert_orphaned_sessions to pg
-- requires: orphan_dispatch
-- requires: intakes
-- requires: notification_outbox

BEGIN;

-- convert_orphaned_sessions: repair option 2, each active orphan becomes a pending request.
-- The request points back at the session (session_id), so accepting it assigns the
-- mechanic to the customer's existing session. Idempotent: an orphan that already has a
-- pending request is skipped (and a unique index makes two at once impossible). An orphan
-- with no customer cannot be asked for and is cancelled instead (reason no_customer).
CREATE OR REPLACE FUNCTION autodoctor.convert_orphaned_sessions()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
    v_orphan record;
    v_request autodoctor.session_requests;
    v_converted integer := 0;
BEGIN
    FOR v_orphan IN
        SELECT s.*, i.location AS intake_location, u.email AS user_email, p.full_name
          FROM autodoctor.sessions s
          LEFT JOIN autodoctor.intakes i ON i.id = s.intake_id
          LEFT JOIN auth.users u ON u.id = s.customer_user_id
          LEFT JOIN autodoctor.profiles p ON p.id = s.customer_user_id
         WHERE s.mechanic_id IS NULL AND s.status IN ('pending', 'live')
           AND NOT EXISTS (SELECT 1 FROM autodoctor.session_requests r
                            WHERE r.session_id = s.id AND r.status = 'pending')
         ORDER BY s.created_at, s.id
           FOR UPDATE OF s SKIP LOCKED
    LOOP
        IF v_orphan.customer_user_id IS NULL THEN
            UPDATE autodoctor.sessions s
               SET status = 'cancelled', cancel_reason = 'no_customer', ended_at = now(), updated_at = now()
             WHERE s.id = v_orphan.id;
            PERFORM autodoctor._log_event('orphan_cancelled', NULL, v_orphan.id, NULL,
                                          v_orphan.status::text, 'cancelled', v_orphan.type, v_orphan.plan,
                                          jsonb_build_object('reason', 'no_customer'));
            CONTINUE;
        END IF;

        INSERT INTO autodoctor.session_requests
            (customer_id, session_type, plan_code, status, customer_name, customer_email,
             expires_at, session_id, intake_id, location, market, metadata)
        VALUES
            (v_orphan.customer_user_id, v_orphan.type,
             -- A legacy plan code not (or no longer) in the catalogue falls back to free.
             coalesce((SELECT p.code FROM autodoctor.plans p
                        WHERE p.code = v_orphan.plan AND v_orphan.type = ANY (p.allowed_types)), 'free'),
             'pending',
             coalesce(nullif(btrim(v_orphan.metadata ->> 'customer_name'), ''),
                      nullif(btrim(v_orphan.full_name), ''), nullif(btrim(v_orphan.user_email), ''),
                      'Customer'),
             coalesce(v_orphan.customer_email, v_orphan.user_email),
             now() + autodoctor._request_ttl(), v_orphan.id, v_orphan.intake_id,
             v_orphan.intake_location, v_orphan.market,
             jsonb_build_object('migrated_from_session', v_orphan.id, 'source', 'orphan'))
        ON CONFLICT (session_id, market) WHERE status = 'pending' AND session_id IS NOT NULL DO NOTHING
        RETURNING * INTO v_request;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        PERFORM autodoctor._log_event('orphan_converted', v_request.id, v_orphan.id, NULL,
                                      v_orphan.status::text, 'pending', v_request.session_type,
                                      v_request.plan_code);
        PERFORM autodoctor._queue_new_request_emails(v_request.id);
        v_converted := v_converted + 1;
    END LOOP;
    RETURN v_converted;
END
$$;

COMMENT ON FUNCTION autodoctor.convert_orphaned_sessions() IS
    'Service role: gives every active orphaned session one pending request pointing at it '
    '(idempotent); accepting that request assigns the session. Returns the number converted.';
REVOKE ALL ON FUNCTION autodoctor.convert_orphaned_sessions() FROM PUBLIC;

GRANT EXECUTE ON FUNCTION autodoctor.convert_orphaned_sessions() TO service_role;

COMMIT;

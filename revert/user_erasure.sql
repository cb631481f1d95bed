-- Revert autodoctor:user_erasure from pg

BEGIN;

DROP TRIGGER autodoctor_on_auth_user_deleted ON auth.users;
DROP FUNCTION autodoctor._erase_user();
ALTER FUNCTION autodoctor._track_mechanic_load() SECURITY INVOKER;

-- Requests whose customer was erased cannot satisfy the older NOT NULL: they are the
-- mechanics' history, kept unless the revert consents to lose data.
DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM autodoctor.session_requests WHERE customer_id IS NULL) THEN
        IF lower(coalesce(current_setting('autodoctor.allow_data_loss', true), ''))
           NOT IN ('on', 'true', 'yes', '1') THEN
            RAISE EXCEPTION USING
                ERRCODE = '55000',
                MESSAGE = format('revert refused: it would delete %s requests of erased customers',
                                 (SELECT count(*) FROM autodoctor.session_requests
                                   WHERE customer_id IS NULL)),
                DETAIL = 'data_loss',
                HINT = 'Nothing of this change was reverted. To delete them anyway, consent '
                    || 'explicitly: PGOPTIONS=''-c autodoctor.allow_data_loss=on'' sqitch revert';
        END IF;
        UPDATE autodoctor.sessions s SET request_id = NULL
         WHERE s.request_id IN (SELECT r.id FROM autodoctor.session_requests r
                                 WHERE r.customer_id IS NULL);
        DELETE FROM autodoctor.session_requests WHERE customer_id IS NULL;
    END IF;
END
$guard$;

ALTER TABLE autodoctor.session_requests DROP CONSTRAINT session_requests_customer_id_fkey;
ALTER TABLE autodoctor.session_requests
    ADD CONSTRAINT session_requests_customer_id_fkey FOREIGN KEY (customer_id)
    REFERENCES auth.users (id) ON DELETE CASCADE;
ALTER TABLE autodoctor.session_requests ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE autodoctor.sessions DROP CONSTRAINT sessions_customer_user_id_fkey;
ALTER TABLE autodoctor.sessions
    ADD CONSTRAINT sessions_customer_user_id_fkey FOREIGN KEY (customer_user_id)
    REFERENCES auth.users (id) ON DELETE CASCADE;
ALTER TABLE autodoctor.sessions DROP CONSTRAINT sessions_mechanic_id_fkey;
ALTER TABLE autodoctor.sessions
    ADD CONSTRAINT sessions_mechanic_id_fkey FOREIGN KEY (mechanic_id)
    REFERENCES autodoctor.profiles (id);

COMMIT;

-- The bare floor of an accept: the same row writes as plain SQL in one transaction (the
-- request becomes accepted, its session is inserted; the sessions table's own load trigger
-- still bumps the mechanic's counter), with no caller, checks, event log or NOTIFY.
-- Same request numbering as accept.sql. Defines: base, nc, nmech, ncust, k=0.
\set k :k + 1
\set n :base + :nc * (:k - 1) + :client_id
\set m :n % :nmech
\set c :n % :ncust
BEGIN;
UPDATE autodoctor.session_requests
   SET status = 'accepted', mechanic_id = md5('bench-mech-' || :m)::uuid, accepted_at = now(),
       updated_at = now(), session_id = md5('bench-bare-' || :n)::uuid
 WHERE id = md5('bench-pool-' || :n)::uuid AND status = 'pending';
INSERT INTO autodoctor.sessions
    (id, mechanic_id, customer_user_id, plan, type, status, scheduled_start, scheduled_for, request_id)
VALUES (md5('bench-bare-' || :n)::uuid, md5('bench-mech-' || :m)::uuid, md5('bench-cust-' || :c)::uuid,
        'free', 'video', 'waiting', now(), now(), md5('bench-pool-' || :n)::uuid);
END;

-- accept_session_request through the full contract, as PostgREST calls it: one
-- transaction, the role and JWT claims set transaction-locally, then the function.
-- Client c's k-th transaction takes pool request n = base + nc*(k-1) + c, so every
-- accept hits its own pending request (the success path); the accepting mechanic is
-- mechanic n mod nmech. Defines: base, nc (clients), nmech, k=0.
\set k :k + 1
\set n :base + :nc * (:k - 1) + :client_id
\set m :n % :nmech
BEGIN;
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims',
                  '{"sub":"' || md5('bench-mech-' || :m) || '","role":"authenticated"}', true);
SELECT s.id, s.status FROM autodoctor.accept_session_request(request_id => md5('bench-pool-' || :n)::uuid) AS s;
END;

-- accept_session_request as the autodoctor_db driver sends it: the same transaction as
-- accept.sql (BEGIN, role and JWT claims set transaction-locally, the function, COMMIT),
-- but pipelined, so the whole transaction is one round trip (psycopg's pipeline mode,
-- which Caller uses). Requires -M extended or -M prepared. Same defines as accept.sql.
\set k :k + 1
\set n :base + :nc * (:k - 1) + :client_id
\set m :n % :nmech
\startpipeline
BEGIN;
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims',
                  '{"sub":"' || md5('bench-mech-' || :m) || '","role":"authenticated"}', true);
SELECT s.id, s.status FROM autodoctor.accept_session_request(request_id => md5('bench-pool-' || :n)::uuid) AS s;
END;
\endpipeline

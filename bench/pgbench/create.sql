-- create_session_request through the full contract (as PostgREST calls it), by a random
-- customer: a video request on the free plan, no idempotency key. Defines: ncust.
\set c random(0, :ncust - 1)
BEGIN;
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims',
                  '{"sub":"' || md5('bench-cust-' || :c) || '","role":"authenticated"}', true);
SELECT r.id FROM autodoctor.create_session_request(session_type => 'video', plan_code => 'free',
                                                   notes => 'Brakes squeal when cold.') AS r;
END;

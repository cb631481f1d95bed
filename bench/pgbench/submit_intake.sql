-- submit_intake through the full contract (as PostgREST calls it), by a random customer at
-- a random point of the service region: an intake and a located pending request.
-- Defines: ncust.
\set c random(0, :ncust - 1)
\set dlat random(-4500, 4500)
\set dlon random(-7500, 7500)
BEGIN;
SELECT set_config('role', 'authenticated', true),
       set_config('request.jwt.claims',
                  '{"sub":"' || md5('bench-cust-' || :c) || '","role":"authenticated"}', true);
SELECT r.id FROM autodoctor.submit_intake(
           session_type => 'diagnostic', plan_code => 'free',
           vehicle => '{"make": "Volkswagen", "model": "Golf", "year": 2015}',
           concern => 'Engine light on, rough idle when cold.',
           latitude => 52.52 + :dlat / 10000.0, longitude => 13.40 + :dlon / 10000.0) AS r;
END;

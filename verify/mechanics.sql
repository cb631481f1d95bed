-- Verify autodoctor:mechanics on pg

BEGIN;

SELECT user_id, active, online, expertise, location, service_radius_km,
       max_concurrent_sessions, created_at, updated_at
  FROM autodoctor.mechanics WHERE FALSE;

ROLLBACK;

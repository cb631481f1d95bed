-- Verify autodoctor:intakes on pg

BEGIN;

SELECT id, created_at, customer_id, vehicle_make, vehicle_model, vehicle_year, vin,
       concern, location, idempotency_key
  FROM autodoctor.intakes WHERE FALSE;

ROLLBACK;

-- Deploy autodoctor:service_radius_antipode to pg
-- requires: mechanics

BEGIN;

-- The longest geodesic on the WGS 84 spheroid, between antipodal points on a meridian, is
-- 20,003.93 km: a radius capped at 20,000 km could not reach the antipode, so "everywhere"
-- was not expressible. 20,040 km covers every point. Widening the check cannot invalidate
-- a row, so the new one is added NOT VALID (no scan under the lock).
ALTER TABLE autodoctor.mechanics DROP CONSTRAINT mechanics_service_radius_km_check;
ALTER TABLE autodoctor.mechanics
    ADD CONSTRAINT mechanics_service_radius_km_check
    CHECK (service_radius_km > 0 AND service_radius_km <= 20040) NOT VALID;

COMMIT;

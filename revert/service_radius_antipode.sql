-- Revert autodoctor:service_radius_antipode from pg

BEGIN;

-- Radii beyond the older cap come back to it (they covered the whole earth either way but
-- for the last few kilometres at the antipode).
UPDATE autodoctor.mechanics SET service_radius_km = 20000, updated_at = now()
 WHERE service_radius_km > 20000;
ALTER TABLE autodoctor.mechanics DROP CONSTRAINT mechanics_service_radius_km_check;
ALTER TABLE autodoctor.mechanics
    ADD CONSTRAINT mechanics_service_radius_km_check
    CHECK (service_radius_km > 0 AND service_radius_km <= 20000);

COMMIT;

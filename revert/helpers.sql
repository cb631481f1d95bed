-- Revert autodoctor:helpers from pg

BEGIN;

DROP FUNCTION autodoctor._point(double precision, double precision);
-- By name: the geography type's schema depends on where PostGIS lives.
DROP FUNCTION autodoctor._within;
DROP FUNCTION autodoctor._make_point(double precision, double precision);
DROP FUNCTION autodoctor._caller();

COMMIT;
